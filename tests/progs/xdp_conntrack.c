/* A minimal TCP connection tracker that logs every map operation's return code, so that the
 * kernel's and bpfmc's map semantics (BPF_ANY / BPF_NOEXIST / BPF_EXIST, deletes of present and
 * absent keys, array index and flag errors) are compared value for value.
 *   SYN: insert the flow with BPF_NOEXIST (0), then again (-EEXIST);
 *   ACK: update with BPF_EXIST (0 when tracked, -ENOENT otherwise; untracked ACKs are dropped);
 *   FIN: delete (0), delete again (-ENOENT).
 * Every IPv4 packet also refreshes its source in an LRU hash (BPF_ANY) and adds its length to an
 * LRU per-CPU hash; both are far larger than the traffic, so nothing is evicted and their
 * contents compare exactly. The last map, recent_ports, is an LRU hash of 4 entries fed more
 * source ports than that: it must evict, and which entries survive is the kernel's business
 * (its LRU lists are per CPU and shrink in batches), so only its size and its newest key are
 * compared. */
#include "common.h"

struct ct_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

enum { CT_SYN_SENT = 1, CT_ESTABLISHED = 2 };

struct ct_val {
	__u32 state;
	__u32 packets;
	__u64 first_seq;
};

struct rc_entry {
	__s32 rc[7];
	__u32 flags;
	__u32 seq;
};

#define LOG_SIZE 32

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} recent_src SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} src_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, __u16);
	__type(value, __u32);
} recent_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LOG_SIZE);
	__type(key, __u32);
	__type(value, struct rc_entry);
} rc_log SEC(".maps");

__u32 seq;

SEC("xdp")
int xdp_conntrack(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);
	__u32 slot = seq++ % LOG_SIZE;
	struct rc_entry *log = bpf_map_lookup_elem(&rc_log, &slot);
	int verdict = XDP_PASS;

	if (!log)
		return XDP_ABORTED;
	log->seq = seq;
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;

	__u32 src = ip->saddr;
	__u64 now = seq;
	log->rc[4] = bpf_map_update_elem(&recent_src, &src, &now, BPF_ANY);
	__u64 *bytes = bpf_map_lookup_elem(&src_bytes, &src);
	if (bytes) {
		*bytes += data_end - data;
	} else {
		__u64 len = data_end - data;

		log->rc[5] = bpf_map_update_elem(&src_bytes, &src, &len, BPF_NOEXIST);
	}

	if ((void *)(th + 1) > data_end)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
		__u16 sport = th->source; /* the same offset in both headers */

		log->rc[6] = bpf_map_update_elem(&recent_ports, &sport, &seq, BPF_ANY);
	}
	if (ip->protocol != IPPROTO_TCP)
		return XDP_PASS;
	struct ct_key key = { .saddr = ip->saddr, .daddr = ip->daddr, .sport = th->source, .dport = th->dest };
	log->flags = th->flags;

	if (th->flags & TCP_SYN) {
		struct ct_val v = { .state = CT_SYN_SENT, .packets = 1, .first_seq = bpf_ntohl(th->seq) };

		log->rc[0] = bpf_map_update_elem(&conntrack, &key, &v, BPF_NOEXIST);
		log->rc[1] = bpf_map_update_elem(&conntrack, &key, &v, BPF_NOEXIST);
	} else if (th->flags & TCP_FIN) {
		log->rc[0] = bpf_map_delete_elem(&conntrack, &key);
		log->rc[1] = bpf_map_delete_elem(&conntrack, &key);
	} else {
		struct ct_val *cur = bpf_map_lookup_elem(&conntrack, &key);
		struct ct_val v = { .state = CT_ESTABLISHED };

		if (cur) {
			v.packets = cur->packets + 1;
			v.first_seq = cur->first_seq;
		}
		log->rc[0] = bpf_map_update_elem(&conntrack, &key, &v, BPF_EXIST);
		if (log->rc[0])
			verdict = XDP_DROP;
	}

	/* Array maps: every index exists (NOEXIST fails with -EEXIST), an index past the end is
	 * -E2BIG, and an unknown flag is -EINVAL. */
	struct rc_entry blank = {};
	__u32 past_end = LOG_SIZE;
	log->rc[2] = bpf_map_update_elem(&rc_log, &past_end, &blank, BPF_ANY);
	log->rc[3] = bpf_map_update_elem(&rc_log, &past_end, &blank, BPF_NOEXIST)
		   + 1000 * bpf_map_update_elem(&rc_log, &slot, log, BPF_NOEXIST);
	return verdict;
}

char _license[] SEC("license") = "GPL";
