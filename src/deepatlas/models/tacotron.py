"""Tacotron 2 (MAP 6.3; Shen et al. 2018): text in, a mel spectrogram out, one step at a time::

    h = BiLSTM(3 x [conv5 -> BN -> ReLU](embed(symbols)))          # (B, N, E) the text read
    for each step i (r frames at a time):
        a_i        = LSTM_att([prenet(y_{i-1}), c_{i-1}])          # where am I?
        c_i, alpha = LocationSensitiveAttention(a_i, h)            # (B, E): what do I say?
        d_i        = LSTM_dec([a_i, c_i])
        y_i        = W [d_i, c_i]  (r frames),  stop_i = sigmoid(w_s [d_i, c_i])
    mel_post = mel + postnet(mel)

Trained with teacher forcing (y_{i-1} is the true previous frame); at inference it feeds back
its own output until the stop token fires. Sizes here are a CPU-sized Tacotron 2 (the paper:
512-d embedding and encoder, 1024-unit LSTMs, r = 1, WaveNet vocoder; here Griffin-Lim), and
the decoder LSTMs' outputs take dropout 0.1 where the paper uses zoneout 0.1.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from deepatlas.models.registry import register_model
from deepatlas.nn.tacotron import LocationSensitiveAttention, Postnet, Prenet

PAD = 0  # symbol id of padding


class Tacotron2(nn.Module):
    def __init__(self, vocab: int, n_mels: int = 80, reduction: int = 3, width: int = 256,
                 prenet: int = 128, rnn: int = 512, attention: int = 128, postnet: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.n_mels, self.r, self.dropout = n_mels, reduction, dropout
        self.embed = nn.Embedding(vocab, width, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Sequential(
            nn.Conv1d(width, width, 5, padding=2, bias=False), nn.BatchNorm1d(width),
            nn.ReLU(), nn.Dropout(0.5)) for _ in range(3))
        self.encoder = nn.LSTM(width, width // 2, batch_first=True, bidirectional=True)
        self.prenet = Prenet(n_mels, prenet)
        self.attention_rnn = nn.LSTMCell(prenet + width, rnn)
        self.attention = LocationSensitiveAttention(rnn, width, attention)
        self.decoder_rnn = nn.LSTMCell(rnn + width, rnn)
        self.frames = nn.Linear(rnn + width, n_mels * reduction)
        self.stop = nn.Linear(rnn + width, reduction)
        self.postnet = Postnet(n_mels, postnet)

    def encode(self, symbols: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) ids, (B,) lengths -> (B, N, width); padding rows are zeros."""
        real = (symbols != PAD).unsqueeze(1)  # (B, 1, N)
        x = self.embed(symbols).transpose(1, 2)  # (B, width, N)
        for conv in self.convs:  # padding kept at zero: in eval, a sentence reads alike in any batch
            x = conv(x) * real
        packed = nn.utils.rnn.pack_padded_sequence(x.transpose(1, 2), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        out, _ = self.encoder(packed)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                total_length=symbols.shape[1])[0]

    def _start(self, memory: torch.Tensor) -> dict[str, torch.Tensor]:
        b, n, _ = memory.shape
        zeros = memory.new_zeros
        return {"att": (zeros(b, self.attention_rnn.hidden_size),) * 2,
                "dec": (zeros(b, self.decoder_rnn.hidden_size),) * 2,
                "context": zeros(b, memory.shape[2]), "weights": zeros(b, n),
                "cumulative": zeros(b, n)}

    def _step(self, frame: torch.Tensor, s: dict, memory: torch.Tensor, keys: torch.Tensor,
              mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder step from the previous frame (B, n_mels): r frames and r stop logits."""
        h, c = self.attention_rnn(torch.cat([self.prenet(frame), s["context"]], -1), s["att"])
        s["att"] = (F.dropout(h, self.dropout, self.training), c)
        s["context"], s["weights"] = self.attention(s["att"][0], keys, memory, s["weights"],
                                                    s["cumulative"], mask)
        s["cumulative"] = s["cumulative"] + s["weights"]
        h, c = self.decoder_rnn(torch.cat([s["att"][0], s["context"]], -1), s["dec"])
        s["dec"] = (F.dropout(h, self.dropout, self.training), c)
        out = torch.cat([s["dec"][0], s["context"]], -1)
        return self.frames(out), self.stop(out)

    def forward(self, symbols: torch.Tensor, lengths: torch.Tensor, mel: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced. symbols (B, N), lengths (B,), mel (B, T, n_mels) with T a multiple of
        r -> mel (B, T, n_mels), mel_post (B, T, n_mels), stop logits (B, T), alignments
        (B, T / r, N)."""
        b, t, _ = mel.shape
        memory = self.encode(symbols, lengths)
        keys, mask = self.attention.keys(memory), symbols == PAD
        previous = torch.cat([mel.new_zeros(b, 1, self.n_mels),  # the all-zero <GO> frame
                              mel[:, self.r - 1:-1:self.r]], 1)  # (B, T / r, n_mels)
        s = self._start(memory)
        frames, stops, alignments = [], [], []
        for i in range(t // self.r):
            y, stop = self._step(previous[:, i], s, memory, keys, mask)
            frames.append(y)
            stops.append(stop)
            alignments.append(s["weights"])
        out = torch.stack(frames, 1).reshape(b, t, self.n_mels)
        return (out, out + self.postnet(out), torch.stack(stops, 1).reshape(b, t),
                torch.stack(alignments, 1))

    @torch.no_grad()
    def generate(self, symbols: torch.Tensor, lengths: torch.Tensor,
                 max_frames: torch.Tensor, threshold: float = 0.5
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Free-running, the prenet's dropout on, each row to its first stop > threshold or
        its ``max_frames`` (B,): mel_post (B, T, n_mels), frames spoken (B,), whether the stop
        token fired (B,), alignments (B, T / r, N)."""
        b = len(symbols)
        memory = self.encode(symbols, lengths)
        keys, mask = self.attention.keys(memory), symbols == PAD
        s, frame = self._start(memory), memory.new_zeros(b, self.n_mels)
        spoken, stopped = max_frames.clone(), torch.zeros(b, dtype=torch.bool,
                                                          device=symbols.device)
        frames, alignments = [], []
        for i in range(-(-int(max_frames.max()) // self.r)):
            y, stop = self._step(frame, s, memory, keys, mask)
            frames.append(y)
            alignments.append(s["weights"])
            fired = torch.sigmoid(stop) > threshold  # (B, r)
            at = i * self.r + fired.float().argmax(1) + 1  # frames up to the first firing
            ending = fired.any(1) & ~stopped & (at <= max_frames)
            spoken[ending], stopped[ending] = at[ending], True
            if (stopped | ((i + 1) * self.r >= max_frames)).all():
                break
            frame = y[:, -self.n_mels:]  # the group's last frame
        out = torch.stack(frames, 1).reshape(b, -1, self.n_mels)
        return out + self.postnet(out), spoken, stopped, torch.stack(alignments, 1)


@register_model(kind="speech")
def tacotron2(*, in_channels: int = 80, image_size: int = 0, num_classes: int = 64,
              reduction: int = 3, width: int = 256, prenet: int = 128, rnn: int = 512,
              attention: int = 128, postnet: int = 256, dropout: float = 0.1) -> nn.Module:
    """A Tacotron 2: ``num_classes`` is the symbol vocabulary and ``in_channels`` the mel bands
    (both filled in by the task); ``reduction`` frames per decoder step."""
    return Tacotron2(num_classes, in_channels, reduction, width, prenet, rnn, attention,
                     postnet, dropout)
