"""Placeholder until the errors branch lands (its version wins the merge)."""


class YokodanError(Exception):
    pass
