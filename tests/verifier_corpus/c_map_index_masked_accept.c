// A map value of 8 u64 slots indexed by (packet byte & 7): slots 8-15 are out of bounds.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct slots { __u64 v[8]; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slots);
} table SEC(".maps");

SEC("xdp")
int xdp_index_ok(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	struct slots *s;
	__u8 *p = data;

	if (p + 1 > (__u8 *)data_end)
		return XDP_PASS;
	s = bpf_map_lookup_elem(&table, &key);
	if (!s)
		return XDP_PASS;
	s->v[*p & 7] += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
