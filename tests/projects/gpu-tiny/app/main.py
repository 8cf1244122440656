import sys
from importlib.metadata import version


def main(role):
    print(role, "nvidia-cuda-runtime-cu12", version("nvidia-cuda-runtime-cu12"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "train")
