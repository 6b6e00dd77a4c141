"""`python -m gantrain ...` (and `torchrun -m gantrain ...`) trains, like the `gantrain` command."""

from gantrain.cli.train import main

if __name__ == "__main__":
    main()
