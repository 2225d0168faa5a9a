"""espnet_llm: speech recognition with large language models, ESPnet style."""
import importlib.util
import sys


def _import_g2p_en_offline() -> None:
    """Keep ESPnet's imports from fetching data over the network.

    espnet2.tasks.asr imports espnet2.text.phoneme_tokenizer, which imports g2p_en, whose import calls
    ``nltk.download()`` for two corpora it lacks (a fetch from GitHub in every process, and a page of errors
    offline). Nothing in espnet_llm uses g2p_en; it is imported once here with ``nltk.download`` switched off, so
    the later imports find it loaded. (``g2p_en.G2p()`` would still need the corpora; ESPnet's phoneme tokenizers
    are not used here.)
    """
    if "g2p_en" in sys.modules or importlib.util.find_spec("g2p_en") is None:
        return
    import nltk

    download = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        import g2p_en  # noqa: F401
    finally:
        nltk.download = download


_import_g2p_en_offline()
