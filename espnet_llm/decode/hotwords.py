"""Hotword (contextual) biasing as a scorer of ESPnet's beam search: a prefix trie over the decoder's tokens.

A list of words or phrases, given at decoding time, is tokenised into the units the beam search scores (the speech
LLM's own tokens, or the AM's BPE pieces for the fusion decoders) and put into a trie. `HotwordScorer` is a full
scorer (one score per vocabulary entry, weight 1 in the search):

- every token that extends the hypothesis' current partial match, or starts a new match at the trie's root, gets
  `+bonus`;
- every other token (EOS included) gets `-acc`, the bonus the current partial match collected so far: a match that
  fails is taken back (the failure arcs of contextual-biasing WFSTs, Aleksic et al. 2015; Zhao et al. 2019), so a
  hypothesis that never completes a listed phrase ends with the same total score as without biasing;
- a completed phrase keeps its bonus (`bonus` x its tokens) and the match starts again at the root.

Each hypothesis' state is (trie node, collected bonus, tokens consumed); `batch_score` first consumes the token the
search appended since the state was made (ESPnet hands a full scorer the whole prefix `ys`, not the chosen token),
then scores every next token. One active match per hypothesis (the longest): phrases that share a prefix share
their path through the trie.

Phrases are tokenised in every form they can take in a hypothesis: with the tokenizer of a byte-level BPE LLM a
word at the start of the text and after a space are different tokens, so both are in the trie.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from espnet.nets.scorer_interface import BatchScorerInterface

State = Tuple[int, float, int]  # trie node, bonus collected by the current partial match, tokens consumed


def read_hotwords(path: str) -> List[str]:
    """One word or phrase per line (UTF-8); blank lines and `#` comments skipped; duplicates kept once."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split("#", 1)[0].strip() for line in f]
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 ({e})") from e
    except OSError as e:
        raise FileNotFoundError(f"hotword list {path}: {e.strerror}") from e
    phrases = list(dict.fromkeys(" ".join(line.split()) for line in lines if line))
    if not phrases:
        raise ValueError(f"hotword list {path} holds no words")
    return phrases


class HotwordTrie:
    """Token-id sequences in a trie: `children[node][token] -> node`, `ends[node]` when a sequence ends there."""

    def __init__(self, sequences: Iterable[Sequence[int]]):
        self.children: List[Dict[int, int]] = [{}]
        self.ends: List[bool] = [False]
        self.count = 0
        self.depth = 0  # tokens of the longest sequence
        for seq in sequences:
            seq = [int(t) for t in seq]
            if not seq:
                continue
            node = 0
            for token in seq:
                nxt = self.children[node].get(token)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][token] = nxt
                    self.children.append({})
                    self.ends.append(False)
                node = nxt
            self.count += not self.ends[node]
            self.ends[node] = True
            self.depth = max(self.depth, len(seq))
        if self.count == 0:
            raise ValueError("no hotword has any token")

    def step(self, state: State, token: int, bonus: float) -> State:
        """The state after `token`: deeper in a match, a new match from the root, or no match (taken back)."""
        node, acc, consumed = state
        nxt = self.children[node].get(token) if node else None
        if nxt is None:
            nxt, acc = self.children[0].get(token), 0.0  # the current match (if any) failed or was never there
        if nxt is None:
            return 0, 0.0, consumed + 1
        acc += bonus
        if self.ends[nxt] and not self.children[nxt]:
            return 0, 0.0, consumed + 1  # complete: its bonus stays
        return nxt, (0.0 if self.ends[nxt] else acc), consumed + 1  # a complete phrase that a longer one extends


class HotwordScorer(BatchScorerInterface):
    """+bonus per token along a listed phrase, the partial bonus taken back when the match fails (see the module)."""

    def __init__(self, sequences: Iterable[Sequence[int]], n_vocab: int, bonus: float = 1.0, sos: Optional[int] = None):
        if bonus < 0:
            raise ValueError(f"hotword bonus must be >= 0, got {bonus}")
        self.trie = HotwordTrie(sequences)
        self.n_vocab, self.bonus, self.sos = n_vocab, float(bonus), sos
        for node in self.trie.children:
            bad = [t for t in node if not 0 <= t < n_vocab]
            if bad:
                raise ValueError(f"hotword token ids {bad} outside the vocabulary ({n_vocab})")

    @property
    def max_phrase_bonus(self) -> float:
        """The most one more phrase can add to a hypothesis: the bonus of the longest listed phrase."""
        return self.bonus * self.trie.depth

    def init_state(self, x: torch.Tensor) -> State:
        return 0, 0.0, 0

    def batch_init_state(self, x: torch.Tensor) -> State:
        return 0, 0.0, 0

    def select_state(self, state, i: int, new_id: int = None):
        return state[i] if isinstance(state, list) else state

    def advance(self, y: Sequence[int], state: State) -> State:
        """Consume the tokens of `y` (a hypothesis without its start marker) that `state` has not seen."""
        for token in y[state[2]:]:
            state = self.trie.step(state, int(token), self.bonus)
        return state

    def scores_for(self, state: State, dtype=torch.float32, device=None) -> torch.Tensor:
        node, acc, _ = state
        scores = torch.full((self.n_vocab,), -acc, dtype=dtype, device=device)
        for token in self.trie.children[0]:
            scores[token] = self.bonus - acc  # a new match from the root (the current one, if any, fails)
        for token in (self.trie.children[node] if node else {}):
            scores[token] = self.bonus  # the current match goes on
        return scores

    def batch_score(self, ys: torch.Tensor, states: List[State], xs: torch.Tensor) -> Tuple[torch.Tensor, List[State]]:
        new_states, rows = [], []
        for y, state in zip(ys.tolist(), states):
            state = self.advance(y[1:], state)  # y[0]: the search's start marker
            new_states.append(state)
            rows.append(self.scores_for(state, xs.dtype, xs.device))
        return torch.stack(rows), new_states

    def score(self, y: torch.Tensor, state: State, x: torch.Tensor):
        scores, states = self.batch_score(y[None], [state], x[None])
        return scores[0], states[0]

    def final_bonus(self, y: Sequence[int]) -> float:
        """What the scorer added over a finished hypothesis `y` (no start marker, EOS excluded): the bonus of its
        completed phrases (a partial match at the end is taken back by the EOS step)."""
        state: State = (0, 0.0, 0)
        total = 0.0
        for token in y:
            scores = self.scores_for(state)
            total += float(scores[int(token)])
            state = self.trie.step(state, int(token), self.bonus)
        return total - state[1]


def llm_hotword_sequences(tokenizer, phrases: Sequence[str], lowercase: bool = False) -> List[List[int]]:
    """The LLM's token ids of each phrase as the first word of a text and after a space (byte-level BPE)."""
    sequences = []
    for phrase in phrases:
        text = phrase.lower() if lowercase else phrase
        for form in (text, " " + text):
            ids = tokenizer(form, add_special_tokens=False)["input_ids"]
            if ids and ids not in sequences:
                sequences.append(ids)
    return sequences


def unit_hotword_sequences(bpemodel: str, token_list: Sequence[str], phrases: Sequence[str]) -> List[List[int]]:
    """The AM's unit ids of each phrase (sentencepiece pieces looked up in its token list; case as the AM's)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(bpemodel))
    index = {piece: i for i, piece in enumerate(token_list)}
    sequences = []
    for phrase in phrases:
        pieces = sp.encode(phrase, out_type=str)
        missing = [p for p in pieces if p not in index]
        if missing:
            raise ValueError(f"hotword {phrase!r}: pieces {missing} are not in the AM's token list")
        ids = [index[p] for p in pieces]
        if ids and ids not in sequences:
            sequences.append(ids)
    return sequences
