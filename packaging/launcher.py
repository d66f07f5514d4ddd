"""Entry script for the frozen app (PyInstaller analyses this file)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # first: DataLoader/multiprocessing children re-enter here when frozen
    from glaucoma_viewer.app import main

    sys.exit(main())
