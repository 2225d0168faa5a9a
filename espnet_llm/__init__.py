"""espnet_llm: speech recognition with large language models, ESPnet style.

Importing the package is cheap (entry points answer ``--help`` before torch or ESPnet load). It installs two
import hooks that act only when ESPnet is imported later:

- g2p_en offline: espnet2.tasks.asr imports espnet2.text.phoneme_tokenizer, which imports g2p_en, whose import
  calls ``nltk.download()`` for two corpora it lacks (a fetch from GitHub in every process, and a page of errors
  offline). Nothing in espnet_llm uses g2p_en; its import runs with ``nltk.download`` switched off.
  (``g2p_en.G2p()`` would still need the corpora; ESPnet's phoneme tokenizers are not used here.)
- ESPnet missing: espnet is not a dependency pip resolves (espnet 202511 pins setuptools<74, CPU torch 2.13.0 needs
  >=77), so an ``import espnet2`` that finds nothing raises an ImportError that says how to install it.
"""
import importlib.abc
import importlib.machinery
import sys

ESPNET_INSTALL_HINT = (
    "espnet_llm needs ESPnet (espnet==202511), which is not installed in this Python. Install it with the "
    "project's tools/install.sh, or by hand beside CPU torch: pip install torch==2.13.0 && "
    "pip install --no-deps espnet==202511 torchaudio==2.11.0 ci_sdr && pip install torch==2.13.0 typeguard "
    "humanfriendly librosa h5py torch_complex hydra-core opt-einsum einops jamo==0.4.1 espnet_tts_frontend "
    "fast-bss-eval==0.1.3 'pypinyin<=0.44.0' nltk protobuf 'importlib-metadata<5.0' matplotlib "
    "(--no-deps because espnet 202511 pins setuptools<74, which would make pip replace CPU torch 2.13.0; "
    "see tools/install.sh)"
)


class _G2pEnOffline(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Loads g2p_en (when something imports it) with ``nltk.download`` switched off."""

    def find_spec(self, name, path=None, target=None):
        if name != "g2p_en":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        import nltk

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        download = nltk.download
        nltk.download = lambda *args, **kwargs: False
        try:
            self.loader.exec_module(module)
        finally:
            nltk.download = download


class _EspnetMissing(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: reached for ``espnet``/``espnet2`` only when no other finder has them."""

    def find_spec(self, name, path=None, target=None):
        if name in ("espnet", "espnet2"):
            raise ModuleNotFoundError(f"No module named '{name}'. {ESPNET_INSTALL_HINT}", name=name)
        return None


def _install_import_hooks() -> None:
    if "g2p_en" not in sys.modules and not any(isinstance(f, _G2pEnOffline) for f in sys.meta_path):
        sys.meta_path.insert(0, _G2pEnOffline())
    if not any(isinstance(f, _EspnetMissing) for f in sys.meta_path):
        sys.meta_path.append(_EspnetMissing())


_install_import_hooks()
