/* A kprobe on do_sys_openat2(int dfd, const char __user *filename, struct open_how *how) that
 * counts opens per directory fd and keeps the last open's arguments. The context is the probed
 * function's saved registers (x86-64 struct pt_regs, declared here because the UAPI header picks
 * the i386 layout under -target bpf): arguments are in di, si, dx.
 * The kernel verifies kprobe programs but cannot BPF_PROG_TEST_RUN them; bpfmc runs the section
 * as "raw" with the event bytes -- a 168-byte register dump -- as the context. */
#include "common.h"

struct pt_regs_x86 {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

struct open_args {
	__s64 dfd;
	__u64 filename;
	__u64 how;
	__u64 ip;
	__s64 rc_read_how;
	__u64 how_flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __s32);
	__type(value, __u64);
} opens_by_dfd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_args);
} last_open SEC(".maps");

SEC("kprobe/do_sys_openat2")
int kprobe_openat2(struct pt_regs_x86 *regs)
{
	__s32 dfd = (__s32)regs->di;
	__u32 zero = 0;
	__u64 one = 1, *n = bpf_map_lookup_elem(&opens_by_dfd, &dfd);
	struct open_args *a = bpf_map_lookup_elem(&last_open, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&opens_by_dfd, &dfd, &one, BPF_NOEXIST);
	if (!a)
		return 0;
	a->dfd = dfd;
	a->filename = regs->si;
	a->how = regs->dx;
	/* The saved instruction pointer, read through probe_read_kernel from the context itself. */
	bpf_probe_read_kernel(&a->ip, sizeof(a->ip), &regs->ip);
	/* struct open_how lives in kernel memory at regs->dx; its first field is the flags. */
	a->rc_read_how = bpf_probe_read_kernel(&a->how_flags, sizeof(a->how_flags), (void *)regs->dx);
	return 0;
}

char _license[] SEC("license") = "GPL";
