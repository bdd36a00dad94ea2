/* XDP firewall and flow accounting: parse Ethernet (with one optional 802.1Q tag), IPv4/IPv6,
 * TCP/UDP; drop sources in an LPM block list and one configured destination port; count packets
 * and bytes per 5-tuple (shared hash, atomic adds) and per protocol class (per-CPU array).
 * Globals: the blocked port is .rodata (const volatile, as a loader would patch it), run counters
 * are .bss, and the last context values seen start as a non-zero marker in .data. */
#include "common.h"

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct counters {
	__u64 packets;
	__u64 bytes;
};

enum { STAT_TCP, STAT_UDP, STAT_OTHER_IP, STAT_IPV6, STAT_ARP, STAT_OTHER, STAT_MAX };

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct flow_key);
	__type(value, struct counters);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, struct counters);
} proto_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* the kernel refuses a preallocated trie */
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} blocklist SEC(".maps");

const volatile __u16 blocked_port = 23;
__u64 total_packets;
__u64 dropped_packets;
__u64 blocked_hits;
__u32 seen_ifindex = 0xffffffff;
__u32 seen_rx_queue = 0xffffffff;

static __always_inline void count(__u32 stat, __u64 len)
{
	struct counters *c = bpf_map_lookup_elem(&proto_stats, &stat);

	/* Per-CPU row: no other CPU writes it, so plain adds are exact. */
	if (c) {
		c->packets += 1;
		c->bytes += len;
	}
}

SEC("xdp")
int xdp_fw(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct ethhdr *eth = data;
	struct flow_key key = {};
	void *l3;
	__u16 proto;

	total_packets++;
	seen_ifindex = ctx->ingress_ifindex;
	seen_rx_queue = ctx->rx_queue_index;

	if ((void *)(eth + 1) > data_end)
		goto drop;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlanhdr *vh = l3;

		if ((void *)(vh + 1) > data_end)
			goto drop;
		proto = vh->proto;
		l3 = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_ARP)) {
		count(STAT_ARP, len);
		return XDP_PASS;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			goto drop;
		count(STAT_IPV6, len);
		return XDP_PASS;
	}
	if (proto != bpf_htons(ETH_P_IP)) {
		count(STAT_OTHER, len);
		return XDP_PASS;
	}

	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > data_end)
		goto drop; /* a runt: the Ethernet type promised IPv4 but nothing follows */

	struct lpm_v4_key lk = { .prefixlen = 32 };
	__builtin_memcpy(lk.addr, &ip->saddr, 4);
	if (bpf_map_lookup_elem(&blocklist, &lk)) {
		blocked_hits++;
		goto drop;
	}

	key.saddr = ip->saddr;
	key.daddr = ip->daddr;
	key.proto = ip->protocol;
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		/* TCP and UDP both start with the two ports. */
		struct udphdr *l4 = (void *)ip + (ip->ihl_version & 0xf) * 4;

		if ((void *)(l4 + 1) > data_end)
			goto drop;
		key.sport = l4->source;
		key.dport = l4->dest;
		count(ip->protocol == IPPROTO_TCP ? STAT_TCP : STAT_UDP, len);
	} else {
		count(STAT_OTHER_IP, len);
	}

	struct counters *c = bpf_map_lookup_elem(&flows, &key);
	if (c) {
		/* Shared by every CPU: atomic adds, as a real flow table must. */
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, len);
	} else {
		struct counters init = { .packets = 1, .bytes = len };

		bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST);
	}

	if (key.dport == bpf_htons(blocked_port))
		goto drop;
	return XDP_PASS;
drop:
	dropped_packets++;
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
