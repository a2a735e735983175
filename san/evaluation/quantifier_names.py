"""The quantifiers' names, in a module that imports nothing (command lines list them in --help)."""

QUANTIFIERS: tuple[str, ...] = ("cc", "acc", "pcc", "pacc", "emq", "hdy")
QUANTIFIER_CHOICES: tuple[str, ...] = ("auto", *QUANTIFIERS)
