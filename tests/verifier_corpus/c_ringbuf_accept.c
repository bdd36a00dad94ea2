// Ring buffer: reserve a record, fill it, submit it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event { __u32 ifindex; __u32 len; __u64 ts; };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int xdp_ringbuf(struct xdp_md *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return XDP_PASS;
	e->ifindex = ctx->ingress_ifindex;
	e->len = ctx->data_end - ctx->data;
	e->ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
