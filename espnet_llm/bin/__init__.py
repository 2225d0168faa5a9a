"""Entry points: `python -m espnet_llm.bin.<thing>_<verb>`."""
import argparse
import sys
from typing import List, Optional, Sequence


class UsageHelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows the module's Usage docstring as written (``description=__doc__``) and each option's default."""


def help_or_args(doc: str, argv: Optional[Sequence[str]], options: str, print_config: bool = True) -> List[str]:
    """The command line of an entry point whose parser is ESPnet's (built from torch and ESPnet classes: seconds to
    import): ``-h``/``--help`` prints the Usage docstring and exits at once; ``--help_all`` becomes ESPnet's
    ``--help`` (every option, after those imports). ``options`` says whose options they are."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help_all" in argv:
        return ["--help" if a == "--help_all" else a for a in argv]
    if "-h" in argv or "--help" in argv:
        print(doc.strip())
        print(f"\nOptions: {options}. --help_all lists every one (imports torch and ESPnet first, ~10 s)"
              + ("; --print_config prints them as YAML with their defaults." if print_config else "."))
        sys.exit(0)
    return argv
