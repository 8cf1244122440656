import sys

import six

from app.prep import scale


def main(role):
    print(role, six.__version__, scale([1.0, 2.0, 4.0]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "train")
