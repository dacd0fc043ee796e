"""How faithful a synthetic set is: label fidelity by judges (``judge``), intensity and
region checks (``quality``), memorisation and realism statistics (``stats``), and the
per-set record ``fidelity.json`` (``measure``)."""
