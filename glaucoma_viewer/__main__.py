"""``python -m glaucoma_viewer [PATH...] [--screenshot OUT.png] [--timeout S]``."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from glaucoma_viewer.app import main

    sys.exit(main())
