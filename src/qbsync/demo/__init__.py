"""`qbsync demo`: a guided run of the whole product on the embedded default and the simulator."""

from qbsync.demo.command import add_parser, cmd_demo

__all__ = ["add_parser", "cmd_demo"]
