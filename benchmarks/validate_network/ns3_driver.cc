// A packet-level run of one dtsim validation case in ns-3 (compiled at run time by cppyy).
//
// Topology: a star. Host i joins one router by a point-to-point link of rate_bps[i] (both
// directions) and one-way delay_s[i]; each end of the link has a drop-tail device queue of
// queue_pkts[i] packets and no queue discipline. So a message from a to b crosses a's link
// (a's uplink) and b's link (b's downlink), one-way latency delay_s[a] + delay_s[b], as in
// dtsim's access links. Without a queue discipline ns-3's traffic-control layer discards,
// silently (no drop trace fires), a packet that finds its device queue full: the trace below
// reports the queue reaching its limit instead.
//
// Traffic: one TCP connection per ordered pair that sends anything, opened at t = 0. Message m
// is written into its connection's socket once t >= start_s[m] and every message in its
// dependency list has been delivered (its last byte received); messages of one connection
// are sent in the order they become ready. The result is each message's delivery time.
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace dtsimref
{
using namespace ns3;

struct Message
{
    int conn;
    uint64_t nbytes;
    double start_s;
    std::vector<int> deps;
    bool ready = false;
    uint64_t end_offset = 0;
    double delivered_s = -1.0;
};

struct Connection
{
    Ptr<Socket> tx;
    uint64_t queued = 0;   // bytes handed to the connection by ready messages
    uint64_t written = 0;  // bytes the socket accepted
    uint64_t received = 0; // bytes the receiver read
    std::deque<int> open;  // messages (ready order) not yet delivered
};

// An optional event trace (ns3_reference.py --trace): rows of (time s, kind, id, value) with
// kind 0 = a connection's cwnd (bytes), 1 = its congestion state (0 open, 1 disorder, 2 cwr,
// 3 recovery, 4 loss: a retransmission timeout), 2 = its ssthresh (bytes), 3 = a device queue
// reaching its limit (id 2 i for host i's own end, 2 i + 1 for the router's end; value: packets).
bool g_tracing = false;
std::vector<std::vector<double>> g_events;
std::vector<uint32_t> g_queue_limit;

void
Record(double kind, int id, double value)
{
    g_events.push_back({Simulator::Now().GetSeconds(), kind, double(id), value});
}

void
OnCwnd(int c, uint32_t before, uint32_t after)
{
    Record(0, c, after);
}

void
OnCongState(int c, TcpSocketState::TcpCongState_t before, TcpSocketState::TcpCongState_t after)
{
    Record(1, c, after);
}

void
OnSsThresh(int c, uint32_t before, uint32_t after)
{
    Record(2, c, after);
}

void
OnQueueLength(int d, uint32_t before, uint32_t after)
{
    if (after > before && after >= g_queue_limit[d])
    {
        Record(3, d, after); // full: ns-3's traffic control drops what comes next, silently
    }
}

void
EnableTrace(bool on)
{
    g_tracing = on;
}

std::vector<std::vector<double>>
TakeTrace()
{
    std::vector<std::vector<double>> out;
    out.swap(g_events);
    return out;
}

// HyStart's delay threshold (ns3_reference.py --hystart-delay linux). ns-3's CUBIC leaves slow
// start when an RTT sample exceeds the min RTT plus the min RTT itself clamped to
// [HyStartDelayMin, HyStartDelayMax] (4 ms, 1 s); Linux adds the min RTT / 8 clamped to
// [4 ms, 16 ms] (tcp_cubic.c, HYSTART_DELAY_THRESH). Setting both ns-3 bounds to Linux's value
// for the connection's path gives Linux's threshold on that path.
bool g_linux_hystart_delay = false;

void
UseLinuxHystartDelay(bool on)
{
    g_linux_hystart_delay = on;
}

class Driver;
void OnAccept(Driver* d, int c, Ptr<Socket> s, const Address& from);
void OnRecv(Driver* d, int c, Ptr<Socket> s);
void OnSendSpace(Driver* d, int c, Ptr<Socket> s, uint32_t available);

class Driver
{
  public:
    std::vector<Message> messages;
    std::vector<Connection> conns;

    void Pump(int c)
    {
        Connection& conn = conns[c];
        while (conn.written < conn.queued)
        {
            uint32_t room = conn.tx->GetTxAvailable();
            if (room == 0)
            {
                return;
            }
            uint64_t want = conn.queued - conn.written;
            uint32_t n = static_cast<uint32_t>(std::min<uint64_t>({want, room, 1u << 16}));
            int sent = conn.tx->Send(Create<Packet>(n));
            if (sent <= 0)
            {
                return;
            }
            conn.written += sent;
        }
    }

    void CheckReady()
    {
        double now = Simulator::Now().GetSeconds();
        for (size_t m = 0; m < messages.size(); ++m)
        {
            Message& msg = messages[m];
            if (msg.ready || now + 1e-12 < msg.start_s)
            {
                continue;
            }
            bool ok = true;
            for (int d : msg.deps)
            {
                if (messages[d].delivered_s < 0)
                {
                    ok = false;
                    break;
                }
            }
            if (!ok)
            {
                continue;
            }
            msg.ready = true;
            Connection& conn = conns[msg.conn];
            conn.queued += msg.nbytes;
            msg.end_offset = conn.queued;
            conn.open.push_back(m);
            if (msg.nbytes == 0)
            {
                Deliver(msg.conn);
            }
            Pump(msg.conn);
        }
    }

    void Deliver(int c)
    {
        Connection& conn = conns[c];
        bool any = false;
        while (!conn.open.empty() && messages[conn.open.front()].end_offset <= conn.received)
        {
            messages[conn.open.front()].delivered_s = Simulator::Now().GetSeconds();
            conn.open.pop_front();
            any = true;
        }
        if (any)
        {
            CheckReady();
        }
    }
};

void
OnAccept(Driver* d, int c, Ptr<Socket> s, const Address& from)
{
    s->SetRecvCallback(MakeBoundCallback(&OnRecv, d, c));
}

void
OnRecv(Driver* d, int c, Ptr<Socket> s)
{
    Ptr<Packet> p;
    while ((p = s->Recv()))
    {
        d->conns[c].received += p->GetSize();
    }
    d->Deliver(c);
}

void
OnSendSpace(Driver* d, int c, Ptr<Socket> s, uint32_t available)
{
    d->Pump(c);
}

void
ConfigureTcp(uint32_t mss, uint32_t iw, uint32_t sndbuf, uint32_t rcvbuf, double min_rto_s)
{
    Config::SetDefault("ns3::TcpL4Protocol::SocketType", TypeIdValue(TcpCubic::GetTypeId()));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(mss));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(iw));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(sndbuf));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(rcvbuf));
    Config::SetDefault("ns3::TcpSocketBase::MinRto", TimeValue(Seconds(min_rto_s)));
    Config::SetDefault("ns3::TcpSocketBase::Sack", BooleanValue(true));
    Config::SetDefault("ns3::TcpSocketBase::Timestamp", BooleanValue(true));
    // Linux recovers with PRR, but ns-3's PrrRecovery left connections stalled for more than
    // 20 s after slow-start overshoot losses in this grid; classic (SACK) fast recovery does not.
    Config::SetDefault("ns3::TcpL4Protocol::RecoveryType",
                       TypeIdValue(TcpClassicRecovery::GetTypeId()));
}

// Returns each message's delivery time (s), -1 for one not delivered by stop_s.
std::vector<double>
RunCase(const std::vector<double>& rate_bps,
        const std::vector<double>& delay_s,
        const std::vector<int>& queue_pkts,
        const std::vector<int>& src,
        const std::vector<int>& dst,
        const std::vector<double>& nbytes,
        const std::vector<double>& start_s,
        const std::vector<std::vector<int>>& deps,
        double stop_s)
{
    int n = static_cast<int>(rate_bps.size());
    NodeContainer hosts;
    hosts.Create(n);
    Ptr<Node> router = CreateObject<Node>();
    InternetStackHelper stack;
    stack.Install(hosts);
    stack.Install(router);
    std::vector<Ipv4Address> address(n);
    for (int i = 0; i < n; ++i)
    {
        PointToPointHelper p2p;
        p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate(uint64_t(rate_bps[i]))));
        p2p.SetChannelAttribute("Delay", TimeValue(Seconds(delay_s[i])));
        p2p.SetQueue("ns3::DropTailQueue<Packet>",
                     "MaxSize",
                     QueueSizeValue(QueueSize(std::to_string(queue_pkts[i]) + "p")));
        NetDeviceContainer devices = p2p.Install(hosts.Get(i), router);
        Ipv4AddressHelper ip;
        std::string base = "10." + std::to_string(1 + i / 250) + "." + std::to_string(i % 250) +
                           ".0";
        ip.SetBase(base.c_str(), "255.255.255.0");
        Ipv4InterfaceContainer ifaces = ip.Assign(devices);
        address[i] = ifaces.GetAddress(0);
        TrafficControlHelper tch; // assigning an address installed FqCoDel: take it off
        tch.Uninstall(devices);
        if (g_tracing)
        {
            g_queue_limit.resize(2 * n);
            for (int end = 0; end < 2; ++end)
            {
                int d = 2 * i + end;
                g_queue_limit[d] = queue_pkts[i];
                DynamicCast<PointToPointNetDevice>(devices.Get(end))
                    ->GetQueue()
                    ->TraceConnectWithoutContext("PacketsInQueue",
                                                 MakeBoundCallback(&OnQueueLength, d));
            }
        }
    }
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();

    Driver driver;
    std::map<std::pair<int, int>, int> conn_of;
    for (size_t m = 0; m < src.size(); ++m)
    {
        auto key = std::make_pair(src[m], dst[m]);
        if (conn_of.find(key) == conn_of.end())
        {
            int c = static_cast<int>(driver.conns.size());
            conn_of[key] = c;
            driver.conns.emplace_back();
            uint16_t port = static_cast<uint16_t>(10000 + c);
            Ptr<Socket> listener =
                Socket::CreateSocket(hosts.Get(dst[m]), TcpSocketFactory::GetTypeId());
            listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), port));
            listener->Listen();
            listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                        MakeBoundCallback(&OnAccept, &driver, c));
            Ptr<Socket> tx =
                Socket::CreateSocket(hosts.Get(src[m]), TcpSocketFactory::GetTypeId());
            if (g_linux_hystart_delay)
            {
                double min_rtt_s = 2 * (delay_s[src[m]] + delay_s[dst[m]]);
                double thresh_s = std::min(std::max(min_rtt_s / 8, 0.004), 0.016);
                Ptr<TcpCubic> cubic = CreateObject<TcpCubic>();
                cubic->SetAttribute("HyStartDelayMin", TimeValue(Seconds(thresh_s)));
                cubic->SetAttribute("HyStartDelayMax", TimeValue(Seconds(thresh_s)));
                DynamicCast<TcpSocketBase>(tx)->SetCongestionControlAlgorithm(cubic);
            }
            tx->Bind();
            tx->Connect(InetSocketAddress(address[dst[m]], port));
            tx->SetSendCallback(MakeBoundCallback(&OnSendSpace, &driver, c));
            driver.conns[c].tx = tx;
            if (g_tracing)
            {
                tx->TraceConnectWithoutContext("CongestionWindow", MakeBoundCallback(&OnCwnd, c));
                tx->TraceConnectWithoutContext("CongState", MakeBoundCallback(&OnCongState, c));
                tx->TraceConnectWithoutContext("SlowStartThreshold",
                                               MakeBoundCallback(&OnSsThresh, c));
            }
        }
        Message msg;
        msg.conn = conn_of[key];
        msg.nbytes = static_cast<uint64_t>(nbytes[m]);
        msg.start_s = start_s[m];
        msg.deps = deps[m];
        driver.messages.push_back(msg);
    }
    for (size_t m = 0; m < src.size(); ++m)
    {
        Simulator::Schedule(Seconds(start_s[m]), &Driver::CheckReady, &driver);
    }
    Simulator::Stop(Seconds(stop_s));
    Simulator::Run();
    std::vector<double> out;
    for (auto& msg : driver.messages)
    {
        out.push_back(msg.delivered_s);
    }
    Simulator::Destroy();
    return out;
}

} // namespace dtsimref
