"""PyTorch + Hugging Face peft reference for `peft bench step`: one training step (forward, backward, AdamW)
of DINOv2-S/14 with a 10-class head (CLS + mean patch pooling), batch 32, at the given resolution, 2 threads,
for linear probe, full fine-tuning, LoRA r=8 on query/value and SHiRA (random mask, about 1% of query/value).
`--bf16` runs the step under CPU autocast to bfloat16 (compare with `PEFT_GEMM=bf16 peft bench step`).
Prints a table and, given our numbers as `--ours method=seconds ...`, the speed-up torch/ours.
Optional: needs torch, transformers and peft (>= 0.17 for SHiRA)."""
import contextlib
import argparse, statistics, time
import torch
from transformers import Dinov2Config, Dinov2ForImageClassification

parser = argparse.ArgumentParser()
parser.add_argument("--resolution", type=int, default=112)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--repeats", type=int, default=10)
parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (oneDNN builds its kernels)")
parser.add_argument("--methods", nargs="+", default=["linear", "full", "lora"])
parser.add_argument("--bf16", action="store_true", help="autocast the step to bfloat16")
parser.add_argument("--shira-r", type=int, default=2,
                    help="peft's SHiRA trains r*(m+n) entries per matrix; r=2 on 384x384 is 1.04%% (ours: 1%%)")
parser.add_argument("--shira-targets", choices=["query,value", "all-linear"], default="query,value",
                    help="all-linear with --shira-r 3 is about ours at 1%% on every linear layer")
parser.add_argument("--ours", nargs="*", default=[], help="method=seconds_per_step from peft bench step")
args = parser.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4, image_size=518,
                      patch_size=14, layer_norm_eps=1e-6, num_labels=10)
x = torch.randn(args.batch, 3, args.resolution, args.resolution)
y = torch.arange(args.batch) % 10
ours = dict(item.split("=") for item in args.ours)
precision = "bf16 autocast" if args.bf16 else "float32"
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, {args.resolution} px, {precision}")
print("| method | trainable params | torch s/step | torch images/s | ours s/step | speed-up (torch / ours) |")
print("|---|---|---|---|---|---|")
def attention_targets(model):
    """Query and value projections under either naming (transformers >= 5 renamed them q_proj/v_proj)."""
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    return ["query", "value"] if "query" in names else ["q_proj", "v_proj"]

for method in args.methods:
    model = Dinov2ForImageClassification(config)
    if method == "linear":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("classifier")
    elif method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=attention_targets(model),
                                                 modules_to_save=["classifier"]))
    elif method == "shira":
        from peft import ShiraConfig, get_peft_model
        model = get_peft_model(model, ShiraConfig(r=args.shira_r, mask_type="random",
                                                  target_modules=attention_targets(model)
                                                  if args.shira_targets == "query,value" else "all-linear",
                                                  modules_to_save=["classifier"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext():
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y, label_smoothing=0.1)
        loss.float().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
    t = statistics.median(times)
    mine = ours.get(method)
    ratio = f"{t / float(mine):.2f}x" if mine else "-"
    print(f"| {method} | {sum(p.numel() for p in params)} | {t:.3f} | {args.batch / t:.1f} | {mine or '-'} | {ratio} |")
