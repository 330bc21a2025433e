"""PyTorch + Hugging Face peft reference for `peft bench step`: one training step (forward, backward, AdamW)
of DINOv2-S/14 with a 10-class head (CLS + mean patch pooling), batch 32, at the given resolution, 2 threads,
for linear probe, full fine-tuning and LoRA r=8 on query/value. Prints a table and, given our numbers as
`--ours method=seconds ...`, the ratio ours/theirs. Optional: needs torch, transformers and peft."""
import argparse, statistics, time
import torch
from transformers import Dinov2Config, Dinov2ForImageClassification

parser = argparse.ArgumentParser()
parser.add_argument("--resolution", type=int, default=112)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--methods", nargs="+", default=["linear", "full", "lora"])
parser.add_argument("--ours", nargs="*", default=[], help="method=seconds_per_step from peft bench step")
args = parser.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, image_size=518,
                      patch_size=14, layer_norm_eps=1e-6, num_labels=10)
x = torch.randn(args.batch, 3, args.resolution, args.resolution)
y = torch.arange(args.batch) % 10
ours = dict(item.split("=") for item in args.ours)
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, {args.resolution} px")
print("| method | trainable params | torch s/step | torch images/s | ours s/step | speed-up (torch / ours) |")
print("|---|---|---|---|---|---|")
for method in args.methods:
    model = Dinov2ForImageClassification(config)
    if method == "linear":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("classifier")
    elif method == "lora":
        from peft import LoraConfig, get_peft_model
        names = {n.split(".")[-1] for n, _ in model.named_modules()}
        targets = ["query", "value"] if "query" in names else ["q_proj", "v_proj"]  # transformers >= 5 renamed them
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=targets,
                                                 modules_to_save=["classifier"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    def step():
        loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y, label_smoothing=0.1)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
    t = statistics.median(times)
    mine = ours.get(method)
    ratio = f"{t / float(mine):.2f}x" if mine else "-"
    print(f"| {method} | {sum(p.numel() for p in params)} | {t:.3f} | {args.batch / t:.1f} | {mine or '-'} | {ratio} |")
