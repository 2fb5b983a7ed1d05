//! Whole VM bundles through every check `vmadm receive` makes before ZFS
//! (`ops::receive::check_bundle`): the JSON chunk, chunk names and the
//! chain of streams, piece framing and each stream's first record.
//! Inputs are built from a plan (so the fuzzer reaches the chain rules),
//! or taken raw when the first byte is odd.
#![no_main]
mod common;
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use rvmadm::ops::bundle::{self, header};
use rvmadm::ops::receive::check_bundle;

const FULL: &[u8] = include_bytes!("../../rvmadm/src/zfs/testdata/plain.begin");
const INC: &[u8] = include_bytes!("../../rvmadm/src/zfs/testdata/inc.begin");
const BEGIN_LEN: usize = 312;

#[derive(Arbitrary, Debug)]
enum Name {
    Vm(u8),
    Data(u8),
    OtherPool(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct Stream {
    name: Name,
    incremental: bool,
    /// Which earlier guid the stream claims to build on (0: none).
    from: u8,
    to_guid: u8,
    /// Names another snapshot in the first record than in the chunk.
    wrong_inner_name: bool,
    /// XOR mask over one byte of the first record.
    flip: Option<(u16, u8)>,
    body: Vec<u8>,
    piece: u16,
    /// Leave out the size-0 chunk that ends the stream.
    unterminated: bool,
    /// A chunk header whose size lies about what follows.
    size_lie: Option<u16>,
}

#[derive(Arbitrary, Debug)]
struct Plan {
    delegate: bool,
    quota: Option<u8>,
    extra: Vec<(u8, u8)>,
    streams: Vec<Stream>,
    tail: Vec<u8>,
}

const SNAPS: &[&str] = &["vmsnap-a", "vmsnap-b", "sending", "-x", "a@b", ""];

fn snap(i: u8) -> &'static str {
    SNAPS[i as usize % SNAPS.len()]
}

fn build(plan: &Plan, u: &mut Unstructured) -> Vec<u8> {
    let uuid = common::VM_UUID;
    let mut vm =
        serde_json::json!({"uuid": uuid, "brand": "jail", "image_uuid": common::IMAGE_UUID});
    if plan.delegate {
        vm["delegate_dataset"] = true.into();
    }
    if let Some(q) = plan.quota {
        vm["quota"] = q.into();
    }
    for _ in &plan.extra {
        if let Ok(m) = common::object(u, 3) {
            for (k, v) in m {
                vm[k] = v;
            }
        }
    }
    let mut out = Vec::new();
    bundle::write_chunk(&mut out, "JSON", &serde_json::to_vec(&vm).expect("json")).expect("vec");
    for s in &plan.streams {
        let name = match &s.name {
            Name::Vm(i) => format!("zones/{uuid}@{}", snap(*i)),
            Name::Data(i) => format!("zones/{uuid}/data@{}", snap(*i)),
            Name::OtherPool(i) => format!("tank/{uuid}@{}", snap(*i)),
            Name::Raw(r) => r.clone(),
        };
        let mut data = if s.incremental { INC } else { FULL }.to_vec();
        let inner = if s.wrong_inner_name {
            format!("zones/{uuid}@other")
        } else {
            name.clone()
        };
        data[56..BEGIN_LEN].fill(0);
        let n = inner.len().min(BEGIN_LEN - 57);
        data[56..56 + n].copy_from_slice(&inner.as_bytes()[..n]);
        if s.incremental {
            data[48..56].copy_from_slice(&u64::from(s.from).to_le_bytes());
        }
        data[40..48].copy_from_slice(&u64::from(s.to_guid).to_le_bytes());
        if let Some((at, mask)) = s.flip {
            let at = at as usize % BEGIN_LEN;
            data[at] ^= mask;
        }
        data.extend_from_slice(&s.body);
        if let Some(lie) = s.size_lie {
            out.extend_from_slice(&header(&name, lie as usize));
            out.extend_from_slice(&data);
            continue;
        }
        let piece = (s.piece as usize).max(1);
        for c in data.chunks(piece) {
            // A name too long to write is refused by the writer.
            if bundle::write_chunk(&mut out, &name, c).is_err() {
                break;
            }
        }
        if !s.unterminated {
            out.extend_from_slice(&header(&name, 0));
        }
    }
    out.extend_from_slice(&plan.tail);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.first().is_some_and(|b| b & 1 == 1) {
        let _ = check_bundle(&mut &data[1..]);
        return;
    }
    let mut u = Unstructured::new(data.get(1..).unwrap_or_default());
    let Ok(plan) = Plan::arbitrary(&mut u) else {
        return;
    };
    let bytes = build(&plan, &mut u);
    let _ = check_bundle(&mut &bytes[..]);
});
