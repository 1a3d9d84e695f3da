"""Prints puzzle_cuda_profile JSON files as Markdown: per-option prefill/decode times and the
additivity check (the sum of per-subblock times against whole stacks measured end to end)."""
import json
import sys

for path in sys.argv[1:]:
    try:
        t = json.load(open(path))
    except Exception as e:  # a failed profile leaves an empty or partial file
        print(f"\n{path}: no result ({e})")
        continue
    d = t["device"]
    print(f"\n### {path.split('/')[-1]}: {d['model']} (sm_{d['sm']}, driver {d['driver']}, GEMM {d['gemm']}), "
          f"{t.get('dtype', 'float32')}\n")
    print("| option | prefill ms | decode ms (all steps) |\n|---|---|---|")
    print(f"| empty layer | {t['empty']['prefill_ms']:.4f} | {t['empty']['decode_ms']:.4f} |")
    for s in t["subblocks"]:
        print(f"| {s['id']} | {s['prefill_ms']:.4f} | {s['decode_ms']:.4f} |")
    print(f"| head (embedding + norm + LM head) | {t['head']['prefill_ms']:.4f} | {t['head']['decode_ms']:.4f} |")
    print("\n| model | layers | prefill predicted | measured | error | decode predicted | measured | error |\n|---|---|---|---|---|---|---|---|")
    for r in t["additivity"]:
        e1 = 100 * (r["predictedPrefill"] - r["measuredPrefill"]) / r["measuredPrefill"]
        e2 = 100 * (r["predictedDecode"] - r["measuredDecode"]) / r["measuredDecode"]
        print(f"| {r['name']} | {r['layers']} | {r['predictedPrefill']:.3f} | {r['measuredPrefill']:.3f} | {e1:+.1f}% | {r['predictedDecode']:.3f} | {r['measuredDecode']:.3f} | {e2:+.1f}% |")
