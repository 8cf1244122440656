import os

import srcnobackend


def main() -> None:
    os.makedirs("/artifacts", exist_ok=True)
    with open("/artifacts/model.txt", "w") as fh:
        fh.write(srcnobackend.GREETING)


if __name__ == "__main__":
    main()
