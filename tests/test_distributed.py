"""The data-parallel context's small collectives."""

import torch
import torch.distributed as dist

from resamplers.training.distributed import DistributedContext, _all_reduce


def test_reductions_return_after_the_backend_lets_go_of_their_tensor(tmp_path):
    # Gloo's worker thread may still hold a finished collective's tensor; destroying the
    # group then deadlocks (the destructor joins the worker with the GIL held), so every
    # reduction must come back only once the tensor is the caller's alone.
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        held = 0
        for _ in range(300):
            t = torch.tensor([1.0])
            _all_reduce(t, dist.ReduceOp.SUM)
            held += t._use_count() > 1
        assert held == 0
        ctx = DistributedContext(rank=0, world_size=2)  # enabled: it runs the collectives
        assert ctx.any_flag(True) and not ctx.any_flag(False)
        assert ctx.mean(3.0) == 1.5  # the sum over this one-process group, over world_size 2
    finally:
        dist.destroy_process_group()
