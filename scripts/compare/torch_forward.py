"""PyTorch reference for `peft bench forward`: DINOv2-S/14 forward throughput (random weights, same shapes),
2 threads, float32, batch 32, median of timed runs after a warm-up. Optional: needs torch and transformers."""
import statistics, sys, time
import torch
from transformers import Dinov2Config, Dinov2Model

torch.set_num_threads(2)
torch.manual_seed(0)
config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                      image_size=518, patch_size=14, layer_norm_eps=1e-6)
model = Dinov2Model(config).eval()
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
print("| resolution | ms/batch | images/s |")
print("|---|---|---|")
for size in (112, 224):
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        model(pixel_values=x)
        times = []
        for _ in range(3):
            start = time.perf_counter(); model(pixel_values=x); times.append(time.perf_counter() - start)
    t = statistics.median(times)
    print(f"| {size} | {t*1000:.0f} | {batch/t:.1f} |")
