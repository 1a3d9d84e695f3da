# Rewrites CUDA launches k<<<g, b, smem, s>>>(args) into emu_launch(g, b, smem, s, k, args) (see run.sh).
import re, sys
src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
s = s.replace('extern __shared__ float4 dw_smem4[];', 'float4* dw_smem4 = g_dyn_smem.data();')
s, n = re.subn(r'(\w+(?:<[^<>;]*>)?)<<<(.*?)>>>\(', lambda m: 'emu_launch(' + m.group(2) + ', ' + m.group(1) + ', ', s, flags=re.S)
open(dst, 'w').write(s)
print(src, 'launches', n)
