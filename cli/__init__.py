"""seg3d's command line: parse options, call one library function, show the result.

Installed as the ``seg3d_cli`` package so that no generic ``cli`` name lands in
site-packages.
"""
