"""``python -m seg3d`` runs the command-line interface."""

from seg3d_cli.main import run

if __name__ == "__main__":
    run()
