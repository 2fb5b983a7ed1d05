# Raw-frame sender and listener for the anti-spoofing tests (run as root
# inside a jail's or the lab's network namespace). Each crafted frame carries
# an ASCII marker so the listener can name what reached it.
#   send <iface> <mac> <ip> <victim-ip> [<done-ip>]
#                                the closing DONE frame comes from done-ip
#                                (default ip), which must pass the port
#   ports <iface> <mac> <ip> <victim-ip>  TCP and UDP to ports 25 and 26
#   reply <iface> <client-mac> <yiaddr> <type> [<lease> [<xid>]]
#                                a DHCP server's broadcast reply (type 2
#                                OFFER, 5 ACK, 6 NAK) for client-mac; with a
#                                lease time, options 53, 54, 51 (lease given
#                                as "first:<s>": 53, 51, 54); prints the
#                                frame's hex (its marker: REPLY<xid>)
#   release <iface> <mac> <ciaddr>  a client's DHCPRELEASE of ciaddr
#   request <iface> <mac> <ciaddr> <requested|-> <xid> [mac]  a client's
#                                DHCPREQUEST (renewing when ciaddr is set;
#                                option 50 right behind 53 when given, or
#                                behind the client id 01+MAC with "mac")
#   ra <iface> <router-mac> <prefix> <valid-lifetime> [<layout>]
#                                a router advertisement to all nodes from the
#                                router's link-local address, with a /64
#                                prefix information option (on-link and
#                                autonomous) placed as <layout> says: its
#                                options in order, "slla", "mtu", "pio"
#                                (default slla,mtu,pio)
#   send6 <iface> <mac> <src6> <marker>  three UDP frames to all nodes from
#                                src6 carrying marker, then a DONE frame
#                                from the NIC's link-local address
#   catch <iface> <marker> <seconds>  prints "ready", then the hex of the
#                                first frame holding marker (or TIMEOUT)
#   listen <iface> <seconds>     prints "ready", then each marker seen once;
#                                stops at the sender's closing DONE frame
#                                (prints TIMEOUT if none came in time)
import socket, struct, sys, time

MARKERS = [b"LEGIT", b"SPOOFIP", b"SPOOFMAC", b"SPOOFARP", b"SPOOFNA",
           b"SPOOFDHCP", b"SPOOFRA", b"SPOOFL2",
           b"TCP25", b"TCP26", b"UDP25", b"TCP6_25", b"TCP6X25",
           b"SLAAC6", b"SLAACNA"]

def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload

def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload

def tcp_syn(sport, dport, payload):
    # Checksum left 0: the filter and the raw listeners never look at it.
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload

def eth(dst, src, etype, payload):
    f = dst + src + struct.pack("!H", etype) + payload
    return f + b"\0" * max(0, 60 - len(f))

def lladdr(m):
    b = bytearray(8) + bytearray(m[:3]) + b"\xff\xfe" + bytearray(m[3:])
    b[8] ^= 2
    return b"\xfe\x80" + b"\0" * 6 + bytes(b[8:])

def ipv6(src, dst, nh, payload):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, 255) + src + dst + payload

def send(iface, own_mac, own_ip, victim, done_ip=None):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    me = mac(own_mac)
    bc = b"\xff" * 6
    bcast = own_ip.rsplit(".", 1)[0] + ".255"
    other_mac = b"\x02\x00\x00\xee\xee\xee"
    frames = [
        eth(bc, me, 0x0800, ipv4(own_ip, bcast, 17, udp(4000, 4000, b"LEGIT"))),
        eth(bc, me, 0x0800, ipv4("192.0.2.99", bcast, 17, udp(4000, 4000, b"SPOOFIP"))),
        eth(bc, other_mac, 0x0800, ipv4(own_ip, bcast, 17, udp(4000, 4000, b"SPOOFMAC"))),
        # ARP reply claiming the victim's address; the marker rides in the padding.
        eth(bc, me, 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + me
            + socket.inet_aton(victim) + bc + socket.inet_aton(victim) + b"SPOOFARP"),
    ]
    # Neighbour advertisement for an address the NIC does not hold.
    target = socket.inet_pton(socket.AF_INET6, "2001:db8::99")
    na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + target + b"\x02\x01" + me + b"SPOOFNA"
    frames.append(eth(b"\x33\x33\x00\x00\x00\x01", me, 0x86dd,
                      ipv6(lladdr(me), socket.inet_pton(socket.AF_INET6, "ff02::1"), 58, na)))
    # DHCP server reply (OFFER-shaped): op 2, chaddr of some client.
    bootp = struct.pack("!BBBBIHH4s4s4s4s", 2, 1, 6, 0, 0x1234, 0, 0,
                        b"\0" * 4, socket.inet_aton(victim), socket.inet_aton(own_ip), b"\0" * 4)
    bootp += other_mac + b"\0" * 10 + b"\0" * 192 + b"\x63\x82\x53\x63" + b"SPOOFDHCP"
    frames.append(eth(bc, me, 0x0800, ipv4(own_ip, "255.255.255.255", 17, udp(67, 68, bootp))))
    # Router advertisement from the NIC's own link-local address.
    ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0) + b"\x01\x01" + me + b"SPOOFRA"
    frames.append(eth(b"\x33\x33\x00\x00\x00\x01", me, 0x86dd,
                      ipv6(lladdr(me), socket.inet_pton(socket.AF_INET6, "ff02::1"), 58, ra)))
    # A non-IP ether type (IEEE local experimental).
    frames.append(eth(bc, me, 0x88b5, b"SPOOFL2"))
    for _ in range(3):
        for f in frames:
            s.send(f)
        time.sleep(0.05)
    # A legitimate closing frame: everything sent before it has passed the
    # port (or been dropped there) by the time a listener sees it.
    s.send(eth(bc, me, 0x0800, ipv4(done_ip or own_ip, bcast, 17, udp(4000, 4000, b"DONE"))))

def ports(iface, own_mac, own_ip, victim):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    me = mac(own_mac)
    bc = b"\xff" * 6
    all_nodes = b"\x33\x33\x00\x00\x00\x01"
    ff02_1 = socket.inet_pton(socket.AF_INET6, "ff02::1")
    # Destination options header (next header TCP, 8 bytes, PadN) in front
    # of the TCP header: the filter must find the ports behind it.
    dstopts = struct.pack("!BB", 6, 0) + b"\x01\x04\0\0\0\0"
    frames = [
        eth(bc, me, 0x0800, ipv4(own_ip, victim, 6, tcp_syn(40000, 25, b"TCP25"))),
        eth(bc, me, 0x0800, ipv4(own_ip, victim, 6, tcp_syn(40000, 26, b"TCP26"))),
        eth(bc, me, 0x0800, ipv4(own_ip, victim, 17, udp(40000, 25, b"UDP25"))),
        eth(all_nodes, me, 0x86dd, ipv6(lladdr(me), ff02_1, 6, tcp_syn(40000, 25, b"TCP6_25"))),
        eth(all_nodes, me, 0x86dd,
            ipv6(lladdr(me), ff02_1, 60, dstopts + tcp_syn(40000, 25, b"TCP6X25"))),
    ]
    for _ in range(3):
        for f in frames:
            s.send(f)
        time.sleep(0.05)
    s.send(eth(bc, me, 0x0800, ipv4(own_ip, own_ip.rsplit(".", 1)[0] + ".255", 17,
                                    udp(4000, 4000, b"DONE"))))

def bootp(op, ciaddr, yiaddr, chaddr, mtype, server, xid=0x1234, options=None):
    b = struct.pack("!BBBBIHH4s4s4s4s", op, 1, 6, 0, xid, 0, 0x8000,
                    socket.inet_aton(ciaddr), socket.inet_aton(yiaddr),
                    socket.inet_aton(server), b"\0" * 4)
    b += chaddr + b"\0" * 10 + b"\0" * 192 + b"\x63\x82\x53\x63"
    if options is None:
        options = bytes([54, 4]) + socket.inet_aton(server)
    return b + bytes([53, 1, mtype]) + options + b"\xff"

def reply(iface, client_mac, yiaddr, mtype, lease=None, xid="0x1234"):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    server = "192.0.2.1"
    options = None
    if lease is not None and lease != "-":
        sid = bytes([54, 4]) + socket.inet_aton(server)
        first = lease.startswith("first:")
        lt = bytes([51, 4]) + struct.pack("!I", int(lease.split(":")[-1]))
        options = lt + sid if first else sid + lt
    msg = bootp(2, "0.0.0.0", yiaddr, mac(client_mac), int(mtype), server,
                int(xid, 16), options)
    # The server host name field carries a marker for `catch`.
    msg = msg[:44] + ("REPLY%s" % xid).encode().ljust(64, b"\0") + msg[108:]
    f = eth(b"\xff" * 6, b"\x02\x00\x00\x00\x00\xfe", 0x0800,
            ipv4(server, "255.255.255.255", 17, udp(67, 68, msg)))
    s.send(f)
    print(f.hex(), flush=True)

def request(iface, own_mac, ciaddr, requested, xid, cid=None):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    server = "192.0.2.1"
    options = b""
    if cid == "mac":
        # The client id busybox's udhcpc sends right behind option 53.
        options = bytes([61, 7, 1]) + mac(own_mac)
    if requested != "-":
        options += bytes([50, 4]) + socket.inet_aton(requested)
    msg = bootp(1, ciaddr, "0.0.0.0", mac(own_mac), 3, server, int(xid, 16), options)
    dst = server if ciaddr != "0.0.0.0" else "255.255.255.255"
    s.send(eth(b"\xff" * 6, mac(own_mac), 0x0800, ipv4(ciaddr, dst, 17, udp(68, 67, msg))))

def release(iface, own_mac, ciaddr):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    server = "192.0.2.1"
    msg = bootp(1, ciaddr, "0.0.0.0", mac(own_mac), 7, server)
    s.send(eth(b"\xff" * 6, mac(own_mac), 0x0800, ipv4(ciaddr, server, 17, udp(68, 67, msg))))

ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"

def ra(iface, router_mac, prefix, lifetime, layout="slla,mtu,pio"):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    me = mac(router_mac)
    opts = {
        "slla": b"\x01\x01" + me,
        "mtu": struct.pack("!BBHI", 5, 1, 0, 1500),
        "pio": struct.pack("!BBBBIII", 3, 4, 64, 0xc0, int(lifetime), int(lifetime), 0)
               + socket.inet_pton(socket.AF_INET6, prefix),
    }
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    body += b"".join(opts[o] for o in layout.split(","))
    frame = eth(ALL_NODES_MAC, me, 0x86dd,
                ipv6(lladdr(me), socket.inet_pton(socket.AF_INET6, "ff02::1"), 58, body))
    for _ in range(3):
        s.send(frame)
        time.sleep(0.05)

def send6(iface, own_mac, src, marker):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    me = mac(own_mac)
    ff02_1 = socket.inet_pton(socket.AF_INET6, "ff02::1")
    src6 = socket.inet_pton(socket.AF_INET6, src)
    frames = [eth(ALL_NODES_MAC, me, 0x86dd, ipv6(src6, ff02_1, 17, udp(4000, 4000, marker.encode())))]
    # A neighbour advertisement for src6 itself (what the jail's kernel sends
    # for an address it holds), its marker in the padding.
    na = struct.pack("!BBHI", 136, 0, 0, 0x20000000) + src6 + b"\x02\x01" + me + b"SLAACNA"
    frames.append(eth(ALL_NODES_MAC, me, 0x86dd, ipv6(lladdr(me), ff02_1, 58, na)))
    for _ in range(3):
        for f in frames:
            s.send(f)
        time.sleep(0.05)
    s.send(eth(ALL_NODES_MAC, me, 0x86dd, ipv6(lladdr(me), ff02_1, 17, udp(4000, 4000, b"DONE"))))

def catch(iface, marker, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    s.settimeout(0.1)
    print("ready", flush=True)
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            f = s.recv(65535)
        except socket.timeout:
            continue
        if marker.encode() in f:
            print(f.hex(), flush=True)
            return
    print("TIMEOUT", flush=True)

def listen(iface, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    s.settimeout(0.1)
    print("ready", flush=True)
    seen = set()
    end = time.time() + float(seconds)
    while True:
        if time.time() >= end:
            print("TIMEOUT", flush=True)
            return
        try:
            f = s.recv(65535)
        except socket.timeout:
            continue
        if b"DONE" in f:
            return
        for m in MARKERS:
            if m in f and m not in seen:
                seen.add(m)
                print(m.decode(), flush=True)

if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(*sys.argv[2:7])
    elif sys.argv[1] == "ports":
        ports(*sys.argv[2:6])
    elif sys.argv[1] == "reply":
        reply(*sys.argv[2:8])
    elif sys.argv[1] == "catch":
        catch(*sys.argv[2:5])
    elif sys.argv[1] == "request":
        request(*sys.argv[2:8])
    elif sys.argv[1] == "release":
        release(*sys.argv[2:5])
    elif sys.argv[1] == "ra":
        ra(*sys.argv[2:7])
    elif sys.argv[1] == "send6":
        send6(*sys.argv[2:6])
    else:
        listen(sys.argv[2], sys.argv[3])
