/* tc ingress destination NAT: IPv4 TCP/UDP to 10.0.0.2 is rewritten to 10.0.0.80, and port 80 to
 * 8080. The address change goes through bpf_csum_diff + bpf_l3_csum_replace/bpf_l4_csum_replace
 * (pseudo-header) + bpf_skb_store_bytes, the port change through bpf_l4_csum_replace with the
 * old and new values; ports are read with bpf_skb_load_bytes, headers with direct packet access.
 * The program records what it saw of the __sk_buff (reads of every plain field) in an array
 * slot per run, marks the skb (mark, priority, tc_classid, cb[]) and counts per source address
 * in a per-CPU hash. Broadcast frames are redirected to ifindex 1, runts are dropped. */
#include "common.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#define IP_OFF sizeof(struct ethhdr)
#define IP_CSUM_OFF (IP_OFF + __builtin_offsetof(struct iphdr, check))
#define IP_DST_OFF (IP_OFF + __builtin_offsetof(struct iphdr, daddr))
#define L4_OFF (IP_OFF + sizeof(struct iphdr))
#define TCP_CSUM_OFF (L4_OFF + __builtin_offsetof(struct tcphdr, check))
#define UDP_CSUM_OFF (L4_OFF + __builtin_offsetof(struct udphdr, check))

struct skb_seen {
	__u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto;
	__u32 priority, ingress_ifindex, ifindex, tc_index, hash, tc_classid, napi_id;
	__u32 data_len, meta_len;
	__u32 cb[5];
	__u32 classid_after, mark_after;
	__s32 rc[6];
};

struct counters {
	__u64 packets;
	__u64 bytes;
};

#define SLOTS 16

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct skb_seen);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct counters);
} per_source SEC(".maps");

const volatile __u32 nat_from = 0x0200000a; /* 10.0.0.2 */
const volatile __u32 nat_to = 0x5000000a;   /* 10.0.0.80 */
const volatile __u16 port_from = 80;
const volatile __u16 port_to = 8080;

__u32 runs;
__u64 nat_count;

SEC("tc")
int tc_nat(struct __sk_buff *skb)
{
	__u32 slot = runs++ % SLOTS;
	struct skb_seen *s = bpf_map_lookup_elem(&seen, &slot);

	if (!s)
		return TC_ACT_SHOT;
	s->len = skb->len;
	s->pkt_type = skb->pkt_type;
	s->mark = skb->mark;
	s->queue_mapping = skb->queue_mapping;
	s->protocol = skb->protocol;
	s->vlan_present = skb->vlan_present;
	s->vlan_tci = skb->vlan_tci;
	s->vlan_proto = skb->vlan_proto;
	s->priority = skb->priority;
	s->ingress_ifindex = skb->ingress_ifindex;
	s->ifindex = skb->ifindex;
	s->tc_index = skb->tc_index;
	s->hash = skb->hash;
	s->tc_classid = skb->tc_classid;
	s->napi_id = skb->napi_id;
	s->data_len = skb->data_end - skb->data;
	s->meta_len = skb->data - skb->data_meta;
	for (int i = 0; i < 5; i++)
		s->cb[i] = skb->cb[i];

	/* Marks for the qdisc and later hooks; the kernel reports mark, priority and cb back in
	 * the test run's ctx_out, tc_classid only by being read back here. */
	skb->mark = 0xc0de0000 | slot;
	skb->priority = 6;
	skb->tc_classid = 0x10020;
	skb->cb[0] = skb->len;
	skb->cb[4] = 0xcb4 + slot;
	s->classid_after = skb->tc_classid;
	s->mark_after = skb->mark;

	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + IP_OFF;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_SHOT;
	if (eth->h_dest[0] == 0xff && eth->h_dest[5] == 0xff)
		return bpf_redirect(1, 0);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_SHOT;

	__u32 src = ip->saddr;
	struct counters *c = bpf_map_lookup_elem(&per_source, &src);
	if (c) {
		c->packets++;
		c->bytes += skb->len;
	} else {
		struct counters init = { 1, skb->len };

		bpf_map_update_elem(&per_source, &src, &init, BPF_ANY);
	}

	__u8 proto = ip->protocol;
	__u32 old_addr = ip->daddr;
	if (old_addr != nat_from || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) || ip->ihl_version != 0x45)
		return TC_ACT_OK;
	skb->cb[1] = proto;

	__u32 csum_off = proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF;
	__u64 l4_flags = BPF_F_PSEUDO_HDR | (proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
	__u32 new_addr = nat_to;
	__be16 ports[2];

	s->rc[0] = bpf_skb_load_bytes(skb, L4_OFF, ports, sizeof(ports));
	if (s->rc[0])
		return TC_ACT_SHOT;

	__s64 diff = bpf_csum_diff(&old_addr, 4, &new_addr, 4, 0);
	s->rc[1] = bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, diff, 0);
	s->rc[2] = bpf_l4_csum_replace(skb, csum_off, 0, diff, l4_flags);
	s->rc[3] = bpf_skb_store_bytes(skb, IP_DST_OFF, &new_addr, 4, 0);

	if (ports[1] == bpf_htons(port_from)) {
		__be16 new_port = bpf_htons(port_to);

		s->rc[4] = bpf_l4_csum_replace(skb, csum_off, ports[1], new_port,
					       sizeof(new_port) | (l4_flags & BPF_F_MARK_MANGLED_0));
		s->rc[5] = bpf_skb_store_bytes(skb, L4_OFF + 2, &new_port, sizeof(new_port), 0);
	}

	/* The helpers may have moved the data: direct pointers are invalid until reloaded. */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = data + IP_OFF;
	if ((void *)(ip + 1) > data_end)
		return TC_ACT_SHOT;
	skb->cb[2] = ip->daddr;
	nat_count++;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
