"""TensorBoard event files written by hand, read back by TensorBoard itself."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import ganforge
from ganforge.train.tb import crc32c, masked_crc


def test_crc32c_known_values():
    # RFC 3720 test vectors for CRC-32C
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"123456789") == 0xE3069283
    assert masked_crc(b"") == 0xA282EAD8


def test_run_events_read_back(tmp_path):
    run = ganforge.train("toy-ring", out=tmp_path, steps=40, progress="off",
                         log={"every": 10, "samples_every": 20})
    acc = EventAccumulator(str(run.path / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"loss_d", "loss_g", "d_real", "d_fake", "grad_g"} <= set(tags["scalars"])
    steps = [e.step for e in acc.Scalars("loss_d")]
    assert steps == [10, 20, 30, 40]
    ours = [r["loss_d"] for r in run.metrics()]
    assert [e.value for e in acc.Scalars("loss_d")] == [float(__import__("numpy").float32(v)) for v in ours]
    imgs = acc.Images("samples")
    assert [i.step for i in imgs] == [0, 20, 40] and imgs[0].width > 100


def test_resume_purges_events_past_the_checkpoint(tmp_path):
    ganforge.train("toy-ring", out=tmp_path, steps=40, name="r", progress="off", log={"every": 10})
    # resuming from the step-40 checkpoint with more steps: TensorBoard must not show duplicates
    run = ganforge.train(None, out=tmp_path, resume=tmp_path / "r", steps=60, progress="off")
    acc = EventAccumulator(str(run.path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss_d")] == [10, 20, 30, 40, 50, 60]
