"""One module per command group; each registers its commands on :data:`cli.app.app` when imported.

core.py        init, push, pull, ls, log, show, tag, check
keys.py        key new, key export, key list
sign.py        sign, verify
trust.py       trust add, trust remove, trust show, trust pin
signature.py   signature export
rekey.py       rekey NS [--reencrypt]
"""
