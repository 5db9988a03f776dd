"""Two CPU processes (gloo) through a Lightning Trainer: each clip is seen exactly once per epoch across ranks."""

import json

import pytest
import torch
from pytorch_lightning import LightningModule, Trainer

from data_videos import source_frames, write_video
from vqvideo.data.datamodule import KineticsDataModule


class ClipIndexRecorder(LightningModule):
    """Trains one scalar on the clips' mean and records which clip indices each rank saw per epoch."""

    def __init__(self, out_path: str):
        super().__init__()
        self.out_path = out_path
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[int] = []
        self.epochs: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        assert batch["video"].shape[1:] == (3, 4, 16, 16)
        self.seen += batch["clip_index"].tolist()
        return (self.weight - batch["video"].mean()) ** 2

    def on_train_epoch_end(self):
        local = torch.tensor(self.seen, dtype=torch.int64)
        gathered = self.all_gather(local)  # (world_size, clips per rank)
        self.epochs.append(sorted(gathered.flatten().tolist()))
        self.seen = []
        if self.global_rank == 0:
            with open(self.out_path, "w") as handle:
                json.dump({"world_size": self.trainer.world_size, "epochs": self.epochs}, handle)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.ddp
def test_every_clip_once_per_epoch_across_two_ranks(tmp_path):
    folder = tmp_path / "videos"
    for number in range(2):
        write_video(folder / f"v{number}.mp4", source_frames(16, which=2 * number), width=32, height=24)
    dm = KineticsDataModule(root=str(folder), num_frames=4, resolution=16, batch_size=2, num_workers=0,
                            val_fraction=0.0, index_cache_dir=str(tmp_path / "index"), progress=False)
    dm.prepare_data()  # the ranks find the cached index
    dm.setup("fit")
    num_clips = len(dm.split_windows("train"))
    assert num_clips == 8  # 2 videos x 16 frames / 4-frame windows
    out_path = tmp_path / "seen.json"
    # fork: no re-import per rank (~1 s instead of ~35 s here); spawn once CUDA is initialised (fork can't then)
    strategy = "ddp_spawn" if torch.cuda.is_initialized() else "ddp_fork"
    trainer = Trainer(strategy=strategy, accelerator="cpu", devices=2, max_epochs=2, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, default_root_dir=str(tmp_path))
    trainer.fit(ClipIndexRecorder(str(out_path)), datamodule=KineticsDataModule(**dm.hparams))
    result = json.loads(out_path.read_text())
    assert result["world_size"] == 2
    assert result["epochs"] == [list(range(num_clips))] * 2
