//! A byte-for-byte shadow of rml_rtmp's chunk deserializer that stores no payload.
//!
//! rml_rtmp 0.8 keeps one message in progress and the bytes of an incomplete chunk, and it
//! sizes both from the peer's chunk headers: a header announcing a 16 MiB message makes it
//! buffer up to 16 MiB, and chunks on a second chunk stream are appended to the message in
//! progress, which then never completes and grows for as long as the peer sends. `ChunkGauge`
//! reads the same headers in step with it (same stages, same rules for type 1-3 headers,
//! extended timestamps and chunk size changes) and refuses a message before its payload
//! arrives when its announced length is above the limit for its type, and a chunk that would
//! run past the end of its message. So what rml_rtmp holds for one connection stays below
//! the largest allowed message.

use std::collections::HashMap;

const INITIAL_CHUNK_SIZE: usize = 128;
const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;
const SET_CHUNK_SIZE: u8 = 1;
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;

/// Largest message accepted, by RTMP message type.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub video: usize,
    pub audio: usize,
    /// Commands, metadata, control messages: everything but audio and video.
    pub other: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkError {
    #[error("message of type {type_id} announces {len} bytes, more than the {limit} allowed")]
    TooLarge {
        type_id: u8,
        len: usize,
        limit: usize,
    },
    #[error("a chunk on stream {csid} runs past the end of its message")]
    Overrun { csid: u32 },
    #[error("a compressed chunk header on stream {csid}, which has no previous header")]
    NoPreviousHeader { csid: u32 },
}

impl ChunkError {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            ChunkError::TooLarge { .. } => "message_too_large",
            ChunkError::Overrun { .. } | ChunkError::NoPreviousHeader { .. } => "bad_chunk",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Header {
    message_length: usize,
    type_id: u8,
    timestamp_field: u32,
}

#[derive(Debug)]
enum Stage {
    Header,
    Payload {
        csid: u32,
        header: Header,
        left: usize,
    },
}

pub struct ChunkGauge {
    limits: Limits,
    chunk_size: usize,
    previous: HashMap<u32, Header>,
    stage: Stage,
    /// Header bytes of the chunk being read (at most 3 + 11 + 4).
    header: Vec<u8>,
    /// Payload bytes of the message in progress; rml_rtmp keeps one, whatever the stream.
    partial: usize,
    /// Its first bytes (a Set Chunk Size message carries the new size there).
    head: [u8; 4],
    /// Messages read to their end.
    messages: u64,
}

impl ChunkGauge {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            chunk_size: INITIAL_CHUNK_SIZE,
            previous: HashMap::new(),
            stage: Stage::Header,
            header: Vec::with_capacity(18),
            partial: 0,
            head: [0; 4],
            messages: 0,
        }
    }

    /// Payload bytes the deserializer holds for the message in progress, plus this chunk's.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.partial + self.header.len()
    }

    /// Takes the next bytes of the stream after the handshake (every byte, in order).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ChunkError> {
        while !bytes.is_empty() {
            match &mut self.stage {
                Stage::Header => {
                    let want = self.header_len();
                    let take = want.saturating_sub(self.header.len()).min(bytes.len());
                    if take == 0 {
                        // the header is complete only once header_len stops growing
                        self.begin_chunk()?;
                        continue;
                    }
                    self.header.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.header.len() == self.header_len() {
                        self.begin_chunk()?;
                    }
                }
                Stage::Payload { left, .. } => {
                    let take = (*left).min(bytes.len());
                    for (i, b) in bytes[..take].iter().enumerate() {
                        let at = self.partial + i;
                        if at >= 4 {
                            break;
                        }
                        self.head[at] = *b;
                    }
                    *left -= take;
                    self.partial += take;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.end_chunk();
                    }
                }
            }
        }
        // a chunk with no payload ends as soon as its header does
        if let Stage::Payload { left: 0, .. } = self.stage {
            self.end_chunk();
        }
        Ok(())
    }

    /// Length of the header being read, as far as its bytes so far tell.
    fn header_len(&self) -> usize {
        let Some(&first) = self.header.first() else {
            return 1;
        };
        let basic = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let fmt = first >> 6;
        let message = [11, 7, 3, 0][fmt as usize];
        let fixed = basic + message;
        if self.header.len() < fixed {
            return fixed;
        }
        if self.timestamp_field(basic, fmt) >= EXTENDED_TIMESTAMP {
            fixed + 4
        } else {
            fixed
        }
    }

    fn csid(&self) -> u32 {
        let h = &self.header;
        match h[0] & 0x3F {
            0 => h[1] as u32 + 64,
            1 => h[2] as u32 * 256 + h[1] as u32 + 64,
            n => n as u32,
        }
    }

    fn timestamp_field(&self, basic: usize, fmt: u8) -> u32 {
        if fmt == 3 {
            // a type 3 header repeats the stream's last timestamp field
            return self
                .previous
                .get(&self.csid())
                .map_or(0, |p| p.timestamp_field);
        }
        let t = &self.header[basic..basic + 3];
        u32::from_be_bytes([0, t[0], t[1], t[2]])
    }

    fn begin_chunk(&mut self) -> Result<(), ChunkError> {
        let first = self.header[0];
        let fmt = first >> 6;
        let basic = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let csid = self.csid();
        let mut header = if fmt == 0 {
            Header::default()
        } else {
            match self.previous.remove(&csid) {
                Some(h) => h,
                None => return Err(ChunkError::NoPreviousHeader { csid }),
            }
        };
        if fmt < 3 {
            header.timestamp_field = self.timestamp_field(basic, fmt);
        }
        if fmt < 2 {
            let m = &self.header[basic + 3..basic + 7];
            header.message_length = u32::from_be_bytes([0, m[0], m[1], m[2]]) as usize;
            header.type_id = m[3];
            let limit = match header.type_id {
                VIDEO => self.limits.video,
                AUDIO => self.limits.audio,
                _ => self.limits.other,
            };
            if header.message_length > limit {
                return Err(ChunkError::TooLarge {
                    type_id: header.type_id,
                    len: header.message_length,
                    limit,
                });
            }
        }
        let len = chunk_len(header.message_length, self.partial, self.chunk_size);
        if self.partial + len > header.message_length {
            return Err(ChunkError::Overrun { csid });
        }
        self.header.clear();
        self.stage = Stage::Payload {
            csid,
            header,
            left: len,
        };
        Ok(())
    }

    fn end_chunk(&mut self) {
        let Stage::Payload { csid, header, .. } = std::mem::replace(&mut self.stage, Stage::Header)
        else {
            return;
        };
        if self.partial == header.message_length {
            if header.type_id == SET_CHUNK_SIZE && self.partial >= 4 {
                // rml_rtmp refuses sizes of 2^31 and above and ends the session itself
                self.chunk_size = u32::from_be_bytes(self.head) as usize;
            }
            self.partial = 0;
            self.messages += 1;
        }
        self.previous.insert(csid, header);
    }
}

/// Payload bytes in the next chunk of a message, by rml_rtmp's rule: the whole message when
/// it fits in a chunk, else what is left of it up to the chunk size.
fn chunk_len(message_length: usize, partial: usize, chunk_size: usize) -> usize {
    if message_length > chunk_size {
        message_length.saturating_sub(partial).min(chunk_size)
    } else {
        message_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    const LIMITS: Limits = Limits {
        video: 1 << 20,
        audio: 64 << 10,
        other: 256 << 10,
    };

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn payload(type_id: u8, ts: u32, len: usize, csid_hint: u32) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            message_stream_id: csid_hint,
            type_id,
            data: Bytes::from(vec![0xAB; len]),
        }
    }

    /// What a real encoder sends, produced by rml_rtmp's own serializer: audio, video and
    /// commands of random sizes, timestamps past the extended-timestamp mark, chunk size
    /// changes mid-stream, split at random byte boundaries. The gauge never objects, and it
    /// ends every message where the deserializer does.
    #[test]
    fn stays_in_step_with_rml_rtmp_on_what_encoders_send() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut ser = ChunkSerializer::new();
            let mut de = ChunkDeserializer::new();
            let mut gauge = ChunkGauge::new(LIMITS);
            let mut wire = Vec::new();
            let mut expected = 0usize;
            let mut ts = if seed % 3 == 0 { 0x00FF_FF00 } else { 0 };
            for _ in 0..300 {
                ts += rng.below(40) as u32;
                let pick = rng.below(20);
                if pick == 0 {
                    let size = [128u32, 4096, 60_000, 1 << 20][rng.below(4) as usize];
                    let p = ser
                        .set_max_chunk_size(size, RtmpTimestamp::new(ts))
                        .unwrap();
                    wire.extend_from_slice(&p.bytes);
                } else {
                    let (t, len) = match pick {
                        1..=8 => (VIDEO, rng.below(if pick == 1 { 900_000 } else { 20_000 })),
                        9..=17 => (AUDIO, rng.below(1_500)),
                        _ => (18, rng.below(600)),
                    };
                    // (the serializer writes nothing for an empty message)
                    let msg = payload(t, ts, 1 + len as usize, 1);
                    let p = ser.serialize(&msg, false, pick.is_multiple_of(2)).unwrap();
                    wire.extend_from_slice(&p.bytes);
                }
                expected += 1;
            }
            let mut got = 0usize;
            let mut at = 0usize;
            while at < wire.len() {
                let n = (1 + rng.below(9000) as usize).min(wire.len() - at);
                let piece = &wire[at..at + n];
                at += n;
                gauge
                    .feed(piece)
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                let mut first = piece;
                while let Some(m) = de.get_next_message(first).unwrap() {
                    first = &[];
                    if m.type_id == SET_CHUNK_SIZE {
                        let size = u32::from_be_bytes(m.data[..4].try_into().unwrap());
                        de.set_max_chunk_size(size as usize).unwrap();
                    }
                    got += 1;
                }
                assert_eq!(
                    gauge.messages, got as u64,
                    "seed {seed}: both ended as many messages"
                );
            }
            assert_eq!(
                got, expected,
                "seed {seed}: the deserializer read everything"
            );
            assert!(matches!(gauge.stage, Stage::Header), "seed {seed}");
            assert!(
                gauge.header.is_empty(),
                "seed {seed}: ended on a message boundary"
            );
            assert_eq!(gauge.partial, 0, "seed {seed}");
        }
    }

    #[test]
    fn refuses_an_oversized_message_from_its_header_alone() {
        let mut gauge = ChunkGauge::new(LIMITS);
        let mut ser = ChunkSerializer::new();
        let p = ser
            .serialize(&payload(VIDEO, 0, 3 << 20, 1), true, false)
            .unwrap();
        // the 12-byte type 0 header is enough
        let err = gauge.feed(&p.bytes[..12]).unwrap_err();
        assert_eq!(
            err,
            ChunkError::TooLarge {
                type_id: VIDEO,
                len: 3 << 20,
                limit: 1 << 20
            }
        );
        assert_eq!(err.reason(), "message_too_large");
        let mut gauge = ChunkGauge::new(LIMITS);
        let p = ser
            .serialize(&payload(AUDIO, 0, 100_000, 1), true, false)
            .unwrap();
        assert!(matches!(
            gauge.feed(&p.bytes),
            Err(ChunkError::TooLarge { type_id: AUDIO, .. })
        ));
    }

    /// Chunks of a second stream appended to a message in progress (rml_rtmp keeps one):
    /// the chunk that would carry it past its length is refused.
    #[test]
    fn refuses_chunks_that_run_past_their_message() {
        let mut gauge = ChunkGauge::new(LIMITS);
        // csid 4: type 0, video, 1000 bytes; only its first 128-byte chunk
        let mut wire = vec![0x04, 0, 0, 0, 0, 0x03, 0xE8, VIDEO, 1, 0, 0, 0];
        wire.extend_from_slice(&[0u8; 128]);
        // csid 5: type 0, audio, 100 bytes: fits a chunk, but 128 bytes are in progress
        wire.extend_from_slice(&[0x05, 0, 0, 0, 0, 0, 100, AUDIO, 1, 0, 0, 0]);
        assert_eq!(gauge.feed(&wire), Err(ChunkError::Overrun { csid: 5 }));
        assert_eq!(
            ChunkGauge::new(LIMITS).feed(&[0xC7]),
            Err(ChunkError::NoPreviousHeader { csid: 7 })
        );
    }

    #[test]
    fn counts_what_the_deserializer_holds() {
        let mut gauge = ChunkGauge::new(LIMITS);
        let mut ser = ChunkSerializer::new();
        let p = ser
            .serialize(&payload(VIDEO, 0, 1000, 1), true, false)
            .unwrap();
        // header (12) + 100 payload bytes of the first 128-byte chunk
        gauge.feed(&p.bytes[..112]).unwrap();
        assert_eq!(gauge.buffered(), 100);
        gauge.feed(&p.bytes[112..140]).unwrap();
        assert_eq!(gauge.buffered(), 128);
        gauge.feed(&p.bytes[140..]).unwrap();
        assert_eq!(gauge.buffered(), 0);
    }
}
