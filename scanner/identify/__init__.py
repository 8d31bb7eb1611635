"""Identification: products from what a peer discloses, device roles, MAC vendors.

Works on the states the probes built (``probes.context``); it names things, it does not
judge them.
"""
