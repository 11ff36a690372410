"""The command line (``rag``, typer): ``main`` (the commands), ``add`` (``rag add``), ``output``
(how answers are printed), ``info``, ``db``, ``mcp_server`` (``rag mcp``). The edge: it reads the
settings and builds the parts (``rag.runtime``), and maps errors to messages in one place.
"""
