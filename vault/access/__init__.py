"""Access control: who may do what to which path, decided by pure functions over rules.

:mod:`vault.access.patterns` holds the one pattern grammar and precedence of mlvault (grants,
denies, trust rules, scan policies and backup include lists all use it) and the decision
function. Storing rules, signing the policy document and enforcing decisions with keys and
signatures live elsewhere; nothing here reads a clock, a catalog or storage.
"""
