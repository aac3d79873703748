"""placeholder"""

from seg3d_cli.errors import user_errors


@user_errors
def sample_data() -> None:
    """Not yet."""
