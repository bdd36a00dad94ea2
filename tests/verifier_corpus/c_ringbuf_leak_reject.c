// Ring buffer: the record is submitted only for queue 0; on the other path it leaks.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event { __u32 ifindex; __u32 queue; };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int xdp_ringbuf_leak(struct xdp_md *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return XDP_PASS;
	e->ifindex = ctx->ingress_ifindex;
	e->queue = ctx->rx_queue_index;
	if (e->queue == 0)
		bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
