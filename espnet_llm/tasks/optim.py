"""A smaller learning rate for a pretrained encoder than for the parts trained from scratch, in ESPnet's optimizers.

Both the speech LLM's task and the project's ASR task take ``encoder_lr_scale``: with a value other than 1,
ESPnet's optimizer (``optim``, ``optim_conf``) gets two parameter groups, the encoder's at ``lr * scale``, the rest
at ``lr``. ESPnet's schedulers (warmuplr, ...) scale each group's own base lr, so the ratio holds all through
training.
"""
import argparse
import logging
from typing import List, Optional

import torch
from espnet2.tasks.abs_task import optim_classes


def add_encoder_lr_scale(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--encoder_lr_scale",
        type=float,
        default=1.0,
        help="Learning rate of the encoder's parameters relative to optim_conf.lr: a pretrained encoder "
        "fine-tuned beside parts trained from scratch wants a smaller step than they do (0.1)",
    )


def encoder_scaled_optimizers(args: argparse.Namespace, model: torch.nn.Module) -> Optional[List[torch.optim.Optimizer]]:
    """The optimizer with the encoder's own group, or None when ``encoder_lr_scale`` is 1 (ESPnet's own then)."""
    scale = float(getattr(args, "encoder_lr_scale", 1.0))
    if scale == 1.0:
        return None
    if scale <= 0.0:
        raise ValueError(f"encoder_lr_scale must be > 0, got {scale} (freeze the encoder instead)")
    if args.sharded_ddp or args.exclude_weight_decay:
        raise ValueError("encoder_lr_scale cannot be combined with sharded_ddp or exclude_weight_decay")
    optim_class = optim_classes.get(args.optim)
    if optim_class is None:
        raise ValueError(f"must be one of {list(optim_classes)}: {args.optim}")
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    encoder_params = [p for p in model.parameters() if id(p) in encoder_ids]
    other_params = [p for p in model.parameters() if id(p) not in encoder_ids]
    lr = args.optim_conf.get("lr")
    if lr is None:
        raise ValueError("encoder_lr_scale needs optim_conf.lr")
    groups = [dict(params=other_params), dict(params=encoder_params, lr=lr * scale)]
    logging.info(f"optimizer: encoder lr {lr * scale:g} ({scale:g} x {lr:g}) for {len(encoder_params)} tensors")
    return [optim_class(groups, **args.optim_conf)]
