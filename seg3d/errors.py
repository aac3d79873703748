"""The errors seg3d raises for problems a user can fix.

The command-line layer turns any :class:`Seg3dError` into one line on stderr and
exit code 1; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class Seg3dError(Exception):
    """A problem with the user's input, files or configuration.

    The message says what is wrong, which file or option, and how to fix it.
    """


class VolumeReadError(Seg3dError):
    """A volume file is missing, unreadable, corrupt or not a 3D/4D image."""


class GeometryMismatchError(Seg3dError):
    """Two volumes that must share one voxel grid do not."""


class DatasetError(Seg3dError):
    """A dataset folder or case list has one or more problems.

    Attributes:
        problems: every problem found, one line each, so a user can fix them
            all in one pass rather than one per run.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class ConfigError(Seg3dError):
    """A configuration file or option has an unknown key or a wrong value."""


class ModelFileError(Seg3dError):
    """A model checkpoint is missing, corrupt or from an incompatible version."""


class OutputExistsError(Seg3dError):
    """An output file exists and ``--overwrite`` was not given."""
