"""Truncated backpropagation through time and stateful (streaming) training for the tasks.

Two options of :class:`~lstmkit.tasks.base.SequenceTask`, usable alone or together:

``tbptt_steps=k``
    Each batch's sequences are cut into chunks of ``k`` steps. The encoder runs chunk by chunk,
    the ``(h, c)`` reached at the end of one chunk is **detached** and starts the next, so a
    backward pass never reaches past a chunk border and activation memory grows with ``k``,
    not with the sequence length ``T``::

        x:     |-- chunk 0 --|-- chunk 1 --|-- chunk 2 --|      (B, T) cut every k steps
        state: 0 ---------> (h,c) -detach-> (h,c) -detach-> ...
        loss:                 (where targets fall in the chunk)
        step:   backward + optimizer step per chunk that has a loss

    With per-step targets every chunk has a loss; with one target per sequence (``pooling=last``)
    only the chunk where a sequence ends does, and chunks before it run without autograd. Rows
    whose sequence has ended (``lengths``) leave the batch; a new batch starts from zeros.
    Training uses manual optimisation (Lightning 2 removed ``truncated_bptt_steps``), so the
    task clips gradients itself (``gradient_clip_val``, handed over from the trainer by
    :func:`hand_over_gradient_clipping`).

``stateful=True``
    Like Keras ``stateful=True``: row ``b`` of batch ``i + 1`` continues row ``b`` of batch
    ``i`` (see :class:`lstmkit.data.StreamDataModule`), so the final state of one batch,
    detached, is the initial state of the next. The state is reset at the start of every epoch
    of each stage (train/val/test keep their own).

Validation and test use the same chunked forward (without gradients), so they also run in
memory bounded by ``k``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lstmkit._logging import get_logger
from lstmkit._validation import check_int

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from lstmkit.tasks.base import SequenceTask

log = get_logger(__name__)

State = tuple[Tensor, Tensor]


def uses_chunks(task: SequenceTask) -> bool:
    """Whether the task runs the chunked/stateful step instead of the plain one."""
    hp = task.hparams
    return bool(hp.get("tbptt_steps") or hp.get("stateful"))


def configure(task: SequenceTask) -> None:
    """Check the TBPTT/stateful options of a built task and switch to manual optimisation.

    Raises:
        ValueError: ``tbptt_steps`` < 1, a bidirectional encoder, or a pooling other than
            ``last`` for sequence-level targets (mean/max pooling need the whole sequence).
    """
    hp = task.hparams
    task._carried_state = {}  # stage -> State carried across batches (stateful=True)
    task._manual_clip_val = None
    if hp.get("tbptt_steps") is not None:
        check_int("tbptt_steps", hp.tbptt_steps)
        task.automatic_optimization = False
    if not uses_chunks(task):
        return
    if task.num_directions != 1:
        raise ValueError(
            "model.encoder.bidirectional=true cannot be used with model.tbptt_steps or "
            "model.stateful: the reverse direction needs the whole sequence"
        )
    if not task.per_step and hp.pooling != "last":
        raise ValueError(
            f"model.pooling={hp.pooling!r} cannot be used with model.tbptt_steps or "
            "model.stateful: mean/max pooling need the whole sequence; use pooling=last"
        )


def hand_over_gradient_clipping(model: Any, trainer_cfg: DictConfig) -> None:
    """Move ``trainer.gradient_clip_val`` into a manually optimised task (``tbptt_steps``).

    Lightning refuses ``gradient_clip_val`` with manual optimisation; the TBPTT step clips with
    the same value (norm clipping) after each chunk's backward pass.
    """
    from omegaconf import open_dict

    if getattr(model, "automatic_optimization", True):
        return
    clip = trainer_cfg.get("gradient_clip_val")
    if clip:
        model._manual_clip_val = float(clip)
        with open_dict(trainer_cfg):
            trainer_cfg.gradient_clip_val = None
        log.info("tbptt_steps: the task clips gradients at norm %g after each chunk", clip)


def reset_state(task: SequenceTask, stage: str) -> None:
    """Forget the state carried across batches of ``stage`` (called at each epoch start)."""
    getattr(task, "_carried_state", {}).pop(stage, None)


def encode(
    task: SequenceTask, x: Tensor, lengths: Tensor, hx: State | None
) -> tuple[Tensor, State]:
    """Embedding (if any) and encoder from state ``hx``.

    Returns:
        ``output`` ``(B, T, H)`` and the state ``(h_n, c_n)`` ``(L, B, H)`` at each sequence's
        last valid step.
    """
    if task.embedding is not None:
        if x.dim() == 3 and x.shape[-1] == 1:
            x = x.squeeze(-1)  # (B, T, 1) -> (B, T)
        x = task.embedding(x.long())  # (B, T) -> (B, T, E)
    return task.encoder(x, hx, lengths=lengths)


def head_outputs(task: SequenceTask, output: Tensor, h_n: Tensor) -> Tensor:
    """Raw outputs as :meth:`SequenceTask.forward` gives them, from encoder outputs/states."""
    features = output if task.per_step else h_n[-1]  # (B, T, H) or (B, H): pooling="last"
    out = task.head(features)
    horizon = getattr(task, "horizon", 1)
    if not task.per_step and horizon > 1:
        out = out.view(-1, horizon, task.output_size)  # (B, H*O) -> (B, horizon, O)
    return out


def chunked_step(task: SequenceTask, batch: tuple[Tensor, Tensor, Tensor], stage: str) -> Tensor:
    """One batch in chunks of ``tbptt_steps`` (whole batch when unset), carrying the state.

    In training with ``tbptt_steps`` every chunk with a loss gets its own backward pass and
    optimizer step; otherwise the summed loss is returned for Lightning to optimise.

    Returns:
        The batch's loss (detached in manual optimisation), averaged over its targets.
    """
    x, y, lengths = batch
    batch_size, steps = x.shape[0], x.shape[1]
    k = task.hparams.get("tbptt_steps") or steps
    manual = stage == "train" and not task.automatic_optimization
    stateful = bool(task.hparams.get("stateful"))
    if stateful and task._trainer is not None and task.trainer.world_size > 1:
        raise ValueError(
            "model.stateful=true runs in one process: a distributed sampler would hand each "
            "rank every other window, breaking the stream; use trainer=cpu or trainer=gpu"
        )
    lengths = lengths.to(x.device)

    state = task._carried_state.get(stage) if stateful else None
    if state is not None and state[0].shape[1] != batch_size:
        log.warning(
            "stateful: batch of %d rows after %d; state reset (use equal batches, drop_last)",
            batch_size,
            state[0].shape[1],
        )
        state = None
    if state is None:
        layers, enc = task.encoder.num_layers, task.encoder
        h = x.new_zeros(layers, batch_size, enc.state_size, dtype=_dtype(x))  # (L, B, H)
        c = x.new_zeros(layers, batch_size, enc.hidden_size, dtype=_dtype(x))  # (L, B, H_cell)
        state = (h, c)

    optimizer = task.optimizers() if manual else None
    metrics = getattr(task, f"{stage}_metrics")
    total, weight = x.new_zeros((), dtype=torch.float32), 0
    returned: Tensor | None = None
    # DDP: every rank must run the same number of backward passes and optimizer steps
    plan = _global_plan(task, lengths, k) if manual and task.trainer.world_size > 1 else None
    num_chunks = len(plan) if plan is not None else -(-steps // k)
    for chunk in range(num_chunks):
        start = chunk * k
        chunk_len = (lengths - start).clamp(0, k)  # (B,) valid steps of each row in this chunk
        rows = (chunk_len > 0).nonzero().squeeze(1)  # rows still running
        if rows.numel() == 0:
            if plan is not None and plan[chunk]:
                _empty_step(task, optimizer)  # another rank has a loss in this chunk
            continue
        width = int(chunk_len.max())
        ends = lengths[rows] <= start + k  # (R,) rows whose sequence ends in this chunk
        has_loss = task.per_step or bool(ends.any())
        if plan is not None and plan[chunk] and not has_loss:
            _empty_step(task, optimizer)  # run this chunk's forward below without a loss
        x_c = x[rows, start : start + width]  # (R, w, ...)
        hx = (state[0][:, rows], state[1][:, rows])  # (L, R, H) detached
        with torch.set_grad_enabled(torch.is_grad_enabled() and has_loss):
            output, (h_n, c_n) = encode(task, x_c, chunk_len[rows], hx)  # (R, w, H), (L, R, H)
            # carry the state forward, cut from this chunk's graph
            state = (
                state[0].index_copy(1, rows, h_n.detach().to(state[0].dtype)),
                state[1].index_copy(1, rows, c_n.detach().to(state[1].dtype)),
            )
            if not has_loss:
                continue
            if task.per_step:
                out = head_outputs(task, output, h_n)  # (R, w, C)
                y_c, len_c = y[rows, start : start + width], chunk_len[rows]  # (R, w), (R,)
                count = int(len_c.sum())  # the loss averages over the chunk's valid steps
            else:
                sel = rows[ends]
                out = head_outputs(task, output[ends], h_n[:, ends])  # (E, ...)
                y_c, len_c, count = y[sel], lengths[sel], int(ends.sum())
            loss = task.compute_loss(out, y_c, len_c)
        if manual:
            optimizer.zero_grad()
            task.manual_backward(loss)
            if task._manual_clip_val:
                task.clip_gradients(
                    optimizer,
                    gradient_clip_val=task._manual_clip_val,
                    gradient_clip_algorithm="norm",
                )
            optimizer.step()
        else:
            returned = loss if returned is None else returned + loss
        with torch.no_grad():
            metrics.update(*task.metric_inputs(out.detach(), y_c, len_c))
        total = total + loss.detach().float() * count
        weight += count
    if stateful:
        task._carried_state[stage] = state

    mean_loss = total / max(weight, 1)
    task.log_step(stage, mean_loss, metrics, batch_size)
    if manual:
        _step_scheduler_at_epoch_end(task)
        return mean_loss
    return returned if returned is not None else mean_loss


def _global_plan(task: SequenceTask, lengths: Tensor, k: int) -> list[bool]:
    """Per chunk, whether any rank has a loss there (DDP): the chunk count is the global max."""
    import torch.distributed as dist

    device = lengths.device  # NCCL reduces CUDA tensors, gloo CPU ones
    count = (-(-lengths.max() // k)).reshape(1).long()
    dist.all_reduce(count, op=dist.ReduceOp.MAX)
    idx = torch.arange(int(count), device=device)  # (N,)
    if task.per_step:
        flags = (idx[:, None] < -(-lengths[None, :] // k)).any(1)  # (N,) some row still runs
    else:
        flags = (idx[:, None] == ((lengths - 1) // k)[None, :]).any(1)  # (N,) a sequence ends
    flags = flags.long()
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags.bool().tolist()


def _empty_step(task: SequenceTask, optimizer: Any) -> None:
    """A zero-loss backward and step, matching another rank's chunk (gradients all-reduced)."""
    optimizer.zero_grad()
    zero = sum((p.sum() * 0.0 for p in task.parameters() if p.requires_grad), start=0.0)
    task.manual_backward(zero)
    optimizer.step()


def _dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def _step_scheduler_at_epoch_end(task: SequenceTask) -> None:
    """Manual optimisation: step the epoch scheduler after the last training batch."""
    if not task.hparams.get("scheduler") or not task.trainer.is_last_batch:
        return
    scheduler = task.lr_schedulers()
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        metric = task.trainer.callback_metrics.get("val/loss")
        if metric is not None:
            scheduler.step(metric)
    elif scheduler is not None:
        scheduler.step()
