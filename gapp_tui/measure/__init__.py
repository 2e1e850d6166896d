"""Measurement: timing blocks of a BlockChain and the full model, locally.

* :mod:`.timer` -- the timing core (torch + stdlib only; copied to remote devices)
* :mod:`.device` -- the description of the machine (torch + stdlib only)
* :mod:`.engine` -- measuring a BlockChain into rows of the store

Import from the submodules (``from gapp_tui.measure.engine import measure``);
this package file imports nothing so that the two self-contained modules stay so.
"""
