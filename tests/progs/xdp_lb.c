/* XDP load balancer front end. Every frame gets 4 bytes of metadata (bpf_xdp_adjust_meta) that
 * carry the receive queue and a verdict tag to the next stage. IPv4 TCP/UDP to the virtual IP
 * is rewritten to the backend (destination MAC and address, IP and L4 checksums updated
 * incrementally with bpf_csum_diff) and redirected through a DEVMAP; IPv6 is steered to another
 * CPU through a CPUMAP; ARP is offered to an AF_XDP socket (XSKMAP, falls back to XDP_PASS when
 * no socket is bound); broadcast goes to a fixed interface with bpf_redirect. */
#include "common.h"

struct bpf_cpumap_val_compat {
	__u32 qsize;
	__u32 prog_fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} tx_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CPUMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bpf_cpumap_val_compat);
} cpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* 10.0.0.2 -> 10.0.0.80, in network byte order as the packet holds them. */
const volatile __u32 vip = 0x0200000a;
const volatile __u32 backend = 0x5000000a;
const volatile __u8 backend_mac[6] = { 0x02, 0, 0, 0, 0, 0x50 };
const volatile __u32 bcast_ifindex = 1;

enum { TAG_NONE = 0x100, TAG_LB = 0x200, TAG_V6 = 0x300, TAG_ARP = 0x400, TAG_BCAST = 0x500 };

__u64 rewritten;

static __always_inline int set_tag(struct xdp_md *ctx, __u32 tag)
{
	void *meta = (void *)(long)ctx->data_meta;
	void *data = (void *)(long)ctx->data;
	__u32 *m = meta;

	if ((void *)(m + 1) > data)
		return -1;
	*m = tag | ctx->rx_queue_index;
	return 0;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u32)))
		return XDP_ABORTED;
	if (set_tag(ctx, TAG_NONE))
		return XDP_ABORTED;

	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		set_tag(ctx, TAG_ARP);
		return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		set_tag(ctx, TAG_V6);
		return bpf_redirect_map(&cpu_map, 0, XDP_ABORTED);
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (eth->h_dest[0] == 0xff && eth->h_dest[1] == 0xff && eth->h_dest[2] == 0xff) {
		set_tag(ctx, TAG_BCAST);
		return bpf_redirect(bcast_ifindex, 0);
	}

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	if (ip->daddr != vip || (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP))
		return XDP_PASS;
	if ((ip->ihl_version & 0xf) != 5)
		return XDP_PASS; /* options: leave to the slow path */

	__u32 old_addr = ip->daddr, new_addr = backend;
	/* The address is in the IP header and in the TCP/UDP pseudo-header: one difference
	 * serves both checksums. */
	__s64 diff = bpf_csum_diff(&old_addr, 4, &new_addr, 4, 0);
	if (diff < 0)
		return XDP_ABORTED;

	ip->check = csum_fold((__u16)~ip->check + (__u32)diff);
	ip->daddr = new_addr;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(ip + 1);

		if ((void *)(th + 1) > data_end)
			return XDP_DROP;
		th->check = csum_fold((__u16)~th->check + (__u32)diff);
	} else {
		struct udphdr *uh = (void *)(ip + 1);

		if ((void *)(uh + 1) > data_end)
			return XDP_DROP;
		if (uh->check) { /* 0: the sender did not checksum */
			__u16 c = csum_fold((__u16)~uh->check + (__u32)diff);
			uh->check = c ? c : 0xffff;
		}
	}
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	for (int i = 0; i < 6; i++)
		eth->h_dest[i] = backend_mac[i];
	rewritten++;
	set_tag(ctx, TAG_LB);
	return bpf_redirect_map(&tx_ports, 0, 0);
}

char _license[] SEC("license") = "GPL";
