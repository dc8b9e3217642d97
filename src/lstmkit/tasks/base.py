"""The shared base of the sequence tasks: embedding -> encoder -> pooling -> head, one step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MetricCollection

from lstmkit._logging import get_logger
from lstmkit._validation import check_bool, check_choice, check_int
from lstmkit.tasks.heads import (
    POOLINGS,
    MLPHead,
    build_from_spec,
    callable_spec,
    encoder_kwargs,
    pool,
    to_plain,
)

if TYPE_CHECKING:
    from lstmkit.nn import ConvFrontEnd

log = get_logger(__name__)

STAGES = ("train", "val", "test")
#: Default optimizer when none is given: ``torch.optim.Adam(lr=1e-3)``.
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}

Batch = tuple[Tensor, Tensor, Tensor]


def plain_hparams(init_locals: dict[str, Any]) -> dict[str, Any]:
    """A task's ``__init__`` arguments as plain values: what ``save_hyperparameters`` stores.

    The encoder becomes ``build_lstm`` keyword arguments and the optimizer/scheduler plain
    ``_target_`` specs, so a checkpoint holds no pickled module or function and
    ``Task.load_from_checkpoint(path)`` alone rebuilds the model.
    """
    hparams = {k: v for k, v in init_locals.items() if k not in ("self", "__class__")}
    hparams["encoder"] = encoder_kwargs(hparams["encoder"])
    hparams["optimizer"] = callable_spec(hparams["optimizer"], "optimizer")
    hparams["scheduler"] = callable_spec(hparams["scheduler"], "scheduler")
    return {k: to_plain(v) for k, v in hparams.items()}


class SequenceTask(LightningModule, ABC):
    """Embedding (optional) -> ``lstmkit.nn`` encoder -> pooling -> head, with one shared step.

    Subclasses call :meth:`_build` from their ``__init__`` and implement :meth:`compute_loss`,
    :meth:`metric_inputs` and :meth:`make_metrics`. Batches are ``(x, y, lengths)``.
    """

    per_step: bool = False

    # ----------------------------------------------------------------- construction
    def _build(self, out_features: int, encoder_input: int | None = None) -> None:
        """Embedding, encoder, head and metrics; ``encoder_input`` overrides the encoder's
        input width (a task that transforms its inputs first, e.g. panel embeddings)."""
        hp = self.hparams
        for switch in ("stateful", "compile"):
            if switch in hp:
                check_bool(switch, hp[switch])
        if hp.vocab_size is not None:
            check_int("vocab_size", hp.vocab_size)
            if hp.embedding_dim is None:
                raise ValueError(
                    "embedding_dim=None: token inputs (vocab_size set) need an embedding_dim"
                )
            check_int("embedding_dim", hp.embedding_dim)
            self.embedding: nn.Embedding | None = nn.Embedding(
                hp.vocab_size, hp.embedding_dim, padding_idx=hp.padding_idx
            )
            encoder_input = hp.embedding_dim
        else:
            if hp.input_size is None:
                raise ValueError(
                    "input_size=None: set input_size (float features) or vocab_size (token ids)"
                )
            encoder_input = encoder_input or check_int("input_size", hp.input_size)
            self.embedding = None
        check_choice("pooling", hp.pooling, POOLINGS)
        from lstmkit.nn import build_lstm

        self.frontend = self._build_frontend(encoder_input)
        if self.frontend is not None:
            encoder_input = self.frontend.output_size
        self.encoder = build_lstm(**hp.encoder, input_size=encoder_input, batch_first=True)
        self.num_directions = 2 if hp.encoder.get("bidirectional", False) else 1
        self.head = MLPHead(self.encoder.output_size, out_features, hp.head_hidden_size, hp.dropout)
        metrics = self.make_metrics()
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        from lstmkit.tasks import tbptt

        tbptt.configure(self)  # tbptt_steps / stateful: checks, manual optimisation

    def _build_frontend(self, input_size: int) -> ConvFrontEnd | None:
        """The ``frontend`` hyperparameter's :class:`~lstmkit.nn.ConvFrontEnd` (None: off).
        With ``"auto": True`` in it, a task that needs every input step (below) gets no front
        end instead of an error.

        Raises:
            ValueError: a front end with per-step outputs (``per_step=True``), truncated BPTT
                or ``stateful`` (their steps are the input's steps, which the front end
                shortens), or a bad front-end option (named ``frontend.<key>``).
        """
        config = self.hparams.get("frontend")
        if config is None:
            return None
        from lstmkit.nn import build_frontend

        when_possible = False  # "auto": true in the config: only where the task can use it
        if isinstance(config, Mapping):
            config = dict(config)
            when_possible = config.pop("auto", False)
        if not isinstance(when_possible, bool):
            raise ValueError(f"frontend.auto={when_possible!r}: must be true or false")

        hp = self.hparams
        needs_steps = [
            (name, value, off)
            for name, value, off in (
                ("per_step", self.per_step, "false"),
                ("tbptt_steps", hp.get("tbptt_steps"), "null"),
                ("stateful", hp.get("stateful"), "false"),
            )
            if value
        ]
        if needs_steps and when_possible:
            log.info(
                "frontend.auto: no front end (%s=%r needs every input step)", *needs_steps[0][:2]
            )
            return None
        if needs_steps:
            name, value, off = needs_steps[0]
            raise ValueError(
                f"frontend={to_plain(config)}: a convolutional front end shortens the sequence, "
                f"but {name}={value!r} needs one encoder step per input "
                f"step; set {name}={off}, or frontend=null (model/frontend=null: no front end)"
            )
        try:
            return build_frontend(input_size, config)
        except (ValueError, TypeError) as err:  # name the hyperparameter: frontend.<key>
            message = str(err)
            prefix = "" if message.startswith("frontend") else "frontend."
            raise type(err)(f"{prefix}{message}") from err

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def make_metrics(self) -> MetricCollection:
        """The metrics of one stage; cloned with a ``train/``, ``val/``, ``test/`` prefix."""

    @abstractmethod
    def compute_loss(self, out: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
        """Loss of a batch from the raw outputs of :meth:`forward`."""

    @abstractmethod
    def metric_inputs(
        self, out: Tensor, y: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``(preds, target)`` for the metric collection."""

    # ----------------------------------------------------------------- model
    def encoder_inputs(
        self, x: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """What the encoder reads: ``x`` embedded (token inputs) and through the front end.

        Args:
            x: ``(B, T, C)`` float features, or ``(B, T)`` int64 token ids with an embedding.
            lengths: ``(B,)`` valid steps per sequence; None when all fill ``T``.

        Returns:
            ``(B, T', C')`` and the ``(B,)`` valid steps of it (``T' = T`` and the same
            lengths without a front end; None stays None).
        """
        if self.embedding is not None:
            if x.dim() == 3 and x.shape[-1] == 1:
                x = x.squeeze(-1)  # (B, T, 1) -> (B, T)
            x = self.embedding(x.long())  # (B, T) -> (B, T, E)
        if getattr(self, "frontend", None) is not None:
            x, lengths = self.frontend(x, lengths)  # (B, T, C) -> (B, T', channels)
        return x, lengths

    def features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Encoder features: ``(B, T, D*H)`` per step if :attr:`per_step`, else ``(B, D*H)``.

        Args:
            x: ``(B, T, C)`` float features, or ``(B, T)`` int64 token ids with an embedding.
            lengths: ``(B,)`` valid steps per sequence; None when all fill ``T``.
        """
        x, lengths = self.encoder_inputs(x, lengths)  # (B, T', C'), (B,)
        output, (h_n, _) = self.encoder(x, lengths=lengths)  # (B, T', D*H), (L*D, B, H)
        if self.per_step:
            return output
        return pool(output, h_n, lengths, self.hparams.pooling, self.num_directions)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Raw head outputs (logits, or standardised regression values)."""
        return self.head(self.features(x, lengths))

    # ----------------------------------------------------------------- the shared step
    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        from lstmkit.tasks import tbptt

        if tbptt.uses_chunks(self):  # tbptt_steps / stateful: chunks with carried state
            return tbptt.chunked_step(self, batch, stage)
        x, y, lengths = batch
        out = self(x, lengths)
        loss = self.compute_loss(out, y, lengths)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        with torch.no_grad():
            inputs = self.metric_inputs(out.detach(), y, lengths)
            # keyword arguments: each metric of the collection takes the ones it names
            metrics.update(**inputs) if isinstance(inputs, dict) else metrics.update(*inputs)
        self.log_step(stage, loss, metrics, len(x))
        return loss

    def log_step(
        self, stage: str, loss: Tensor, metrics: MetricCollection, batch_size: int
    ) -> None:
        """Log a step's loss (per step in training, per epoch always). ``metrics`` (already
        updated with the step) are logged once, when the epoch ends (`_log_epoch_metrics`):
        handing the metric objects to ``self.log`` every step measured ~3 ms a step of
        Lightning bookkeeping for the same epoch values."""
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
            sync_dist=stage != "train",  # the epoch's val/test loss averaged over processes
        )
        self.__dict__.setdefault("_stages_with_metrics", set()).add(stage)

    def _log_epoch_metrics(self, stage: str) -> None:
        """Log the epoch's value of every metric of ``stage`` and reset them. ``compute()``
        gathers the metric states of all processes under DDP, so every rank logs the same."""
        updated = self.__dict__.get("_stages_with_metrics", set())
        if stage not in updated:  # no batch this epoch (e.g. an empty validation split)
            return
        updated.discard(stage)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        self.log_dict(metrics.compute(), on_step=False, on_epoch=True)
        metrics.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def setup(self, stage: str) -> None:
        # compile=True: torch.compile in place (nn.Module.compile keeps the state-dict keys)
        if self.hparams.get("compile") and getattr(self, "_compiled_call_impl", None) is None:
            log.info("compiling the model (torch.compile, dynamic shapes)")
            self.compile(dynamic=True)

    # stateful=True: each stage's carried state starts from zeros every epoch
    def on_train_epoch_start(self) -> None:
        self._carried_state.pop("train", None)

    def on_validation_epoch_start(self) -> None:
        self._carried_state.pop("val", None)

    def on_test_epoch_start(self) -> None:
        self._carried_state.pop("test", None)

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        optimizer = build_from_spec(self.hparams.optimizer or DEFAULT_OPTIMIZER, self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        scheduler = build_from_spec(self.hparams.scheduler, optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss", "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which class to rebuild, so `lstmkit-eval` needs only the checkpoint path.
        info = {"task": f"{type(self).__module__}.{type(self).__qualname__}"}
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None:
            info["datamodule"] = f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"
        checkpoint["lstmkit"] = to_plain(info)
