"""`python -m imagemachines …` (also what `torchrun -m imagemachines train …` runs)."""

from imagemachines.cli import main

if __name__ == "__main__":
    main()
