"""Byte formats: pure encode/decode functions, each with a magic, a version and caps.

Every format starts with a 4-byte magic and a one-byte format version, refuses unknown
versions and suites with ConfigurationError, caps every length field before allocating,
and authenticates its header as AEAD associated data. Decoders never trust a length they
have not checked against both its cap and the bytes actually present.
"""
