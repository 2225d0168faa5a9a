#!/usr/bin/env python3
"""Write a hotword list for decoding (`--hotwords FILE`): given phrases, plus distractors drawn from a text corpus.

Usage:
    # AN4's biasing list (words never seen in training and the LibriVox clips' name) and 100 distractors: frequent
    # words of LibriSpeech dev-clean's text that AN4's transcripts never have
    python -m espnet_llm.bin.hotword_list --phrases local/hotwords.txt --out data/hotwords/biased.txt
    python -m espnet_llm.bin.hotword_list --phrases local/hotwords.txt --distractors 100 \
        --distractors_from ../../../../shared/data/text/librispeech-dev-clean/*.txt \
        --exclude data/train/text data/test/text data/dev/text data/librivox/text --out data/hotwords/distractors.txt

    # a biasing list of dev's rare words (what chooses --hotword_bonus): the words of dev's transcripts that the
    # training transcripts have at most twice
    python -m espnet_llm.bin.hotword_list --rare_words_of data/dev/text --train_text data/train/text \
        --max_train_count 2 --out data/hotwords/dev_rare.txt

One phrase a line, upper case (the recipes' transcripts' case), the given phrases first. Distractors are the most
frequent words of at least --min_letters letters in --distractors_from that no --exclude file has (Kaldi text: the
first field is an utterance id and is skipped), ties in alphabetical order: the same list on every run.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from espnet_llm.bin import UsageHelpFormatter


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=UsageHelpFormatter)
    parser.add_argument("--phrases", type=Path, help="the phrases to bias, one a line")
    parser.add_argument("--rare_words_of", type=Path,
                        help="Kaldi text: bias its words that --train_text holds at most --max_train_count times "
                             "(instead of --phrases; in order of first occurrence)")
    parser.add_argument("--train_text", type=Path, nargs="*", default=[], help="Kaldi text files: the training words")
    parser.add_argument("--max_train_count", type=int, default=0, help="--rare_words_of: at most this often")
    parser.add_argument("--distractors", type=int, default=0, help="how many distractor words to add")
    parser.add_argument("--distractors_from", type=Path, nargs="*", default=[], help="plain text files")
    parser.add_argument("--exclude", type=Path, nargs="*", default=[], help="Kaldi text files whose words not to add")
    parser.add_argument("--min_letters", type=int, default=6)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        sys.exit(f"hotword_list: {path} does not exist")
    except UnicodeDecodeError as e:
        sys.exit(f"hotword_list: {path} is not UTF-8 ({e.reason} at byte {e.start})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    from espnet_llm.studies import distractors, kaldi_words, rare_words

    if (args.phrases is None) == (args.rare_words_of is None):
        sys.exit("hotword_list: give --phrases or --rare_words_of (one of them)")
    if args.phrases is not None:
        phrases = [" ".join(line.upper().split()) for line in read_utf8(args.phrases).splitlines() if line.strip()]
        if not phrases:
            sys.exit(f"hotword_list: {args.phrases} lists no phrase")
    else:
        if not args.train_text:
            sys.exit("hotword_list: --rare_words_of needs --train_text")
        phrases = rare_words(kaldi_words(read_utf8(args.rare_words_of)),
                             [w for p in args.train_text for w in kaldi_words(read_utf8(p))], args.max_train_count)
        if not phrases:
            sys.exit(f"hotword_list: no word of {args.rare_words_of} is in --train_text at most "
                     f"{args.max_train_count} times")
    extra = []
    if args.distractors > 0:
        if not args.distractors_from:
            sys.exit("hotword_list: --distractors needs --distractors_from")
        excluded = {w for p in phrases for w in p.split()}
        for path in args.exclude:
            excluded.update(kaldi_words(read_utf8(path)))
        extra = distractors((read_utf8(p) for p in args.distractors_from), excluded, args.distractors,
                            args.min_letters)
        if len(extra) < args.distractors:
            sys.exit(f"hotword_list: only {len(extra)} distractors of {args.min_letters}+ letters in "
                     f"{' '.join(map(str, args.distractors_from))}, {args.distractors} asked for")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text("".join(p + "\n" for p in phrases + extra), encoding="utf-8")
    tmp.replace(args.out)
    print(f"hotword_list: {len(phrases)} phrases + {len(extra)} distractors -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
