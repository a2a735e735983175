"""The output formats of the comparison tables, by name (:mod:`san.benchmark.tables` renders them),
in a module without heavy imports so that ``make_tables.py --help`` can offer them."""

FORMATS: tuple[str, ...] = ("md", "csv", "tex")
