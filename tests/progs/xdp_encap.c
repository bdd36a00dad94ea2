/* Two XDP programs that change the frame's size.
 * xdp_ipip: IP-in-IP encapsulation of IPv4 TCP toward a tunnel endpoint -- grow the head by an
 * outer IPv4 header (bpf_xdp_adjust_head), move the Ethernet header to the new front, build the
 * outer header and its checksum with bpf_csum_diff, and bounce it out (XDP_TX).
 * xdp_snap: a sampler's snap length -- frames longer than 64 bytes are cut to 64 and frames
 * shorter than the 60-byte Ethernet minimum are padded with zeroes (bpf_xdp_adjust_tail both
 * ways). */
#include "common.h"

#define IPPROTO_IPIP 4
#define SNAP_LEN 64
#define ETH_MIN 60

const volatile __u32 tunnel_src = 0x010010ac; /* 172.16.0.1 */
const volatile __u32 tunnel_dst = 0x020010ac; /* 172.16.0.2 */

__u64 encapsulated;
__s64 last_adjust_rc = 1;

SEC("xdp")
int xdp_ipip(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *inner = (void *)(eth + 1);

	if ((void *)(inner + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || inner->protocol != IPPROTO_TCP)
		return XDP_PASS;
	__u16 inner_len = bpf_ntohs(inner->tot_len);

	last_adjust_rc = bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr));
	if (last_adjust_rc)
		return XDP_ABORTED;

	/* Every packet pointer is stale after adjust_head: reload and re-check. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	struct ethhdr *new_eth = data;
	struct ethhdr *old_eth = data + sizeof(struct iphdr);
	struct iphdr *outer = (void *)(new_eth + 1);

	if ((void *)(outer + 1) > data_end || (void *)(old_eth + 1) > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(new_eth->h_dest, old_eth->h_source, 6);
	__builtin_memcpy(new_eth->h_source, old_eth->h_dest, 6);
	new_eth->h_proto = bpf_htons(ETH_P_IP);

	struct iphdr hdr = {
		.ihl_version = 0x45,
		.tot_len = bpf_htons(inner_len + sizeof(struct iphdr)),
		.frag_off = bpf_htons(0x4000),
		.ttl = 64,
		.protocol = IPPROTO_IPIP,
		.saddr = tunnel_src,
		.daddr = tunnel_dst,
	};
	hdr.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&hdr, sizeof(hdr), 0));
	*outer = hdr;
	encapsulated++;
	return XDP_TX;
}

__s64 snap_rc;

SEC("xdp")
int xdp_snap(struct xdp_md *ctx)
{
	int len = ctx->data_end - ctx->data;

	if (len > SNAP_LEN)
		snap_rc = bpf_xdp_adjust_tail(ctx, SNAP_LEN - len);
	else if (len < ETH_MIN)
		snap_rc = bpf_xdp_adjust_tail(ctx, ETH_MIN - len); /* the new bytes read as zero */
	else
		return XDP_PASS;
	return snap_rc ? XDP_ABORTED : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
