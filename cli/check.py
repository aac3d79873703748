"""placeholder"""

from seg3d_cli.errors import user_errors


@user_errors
def check() -> None:
    """Not yet."""
