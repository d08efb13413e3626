//! RFC 6381 codec strings for the master playlist, read from the actual bitstream.

/// `avc1.PPCCLL` from an SPS NAL unit (starting with the NAL header byte).
fn avc1_from_sps(sps: &[u8]) -> Option<String> {
    if sps.len() < 4 || sps[0] & 0x1f != 7 {
        return None;
    }
    Some(format!("avc1.{:02x}{:02x}{:02x}", sps[1], sps[2], sps[3]))
}

/// From an AVCDecoderConfigurationRecord (`avcC`): profile, compatibility and level bytes.
pub fn avc1_from_avcc(avcc: &[u8]) -> Option<String> {
    if avcc.len() < 4 || avcc[0] != 1 {
        return None;
    }
    Some(format!(
        "avc1.{:02x}{:02x}{:02x}",
        avcc[1], avcc[2], avcc[3]
    ))
}

/// From an Annex B access unit or extradata containing an SPS.
pub fn avc1_from_annexb(data: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let nal = &data[i + 3..];
            if let Some(s) = avc1_from_sps(nal) {
                return Some(s);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// `mp4a.40.N` from an AudioSpecificConfig (N = audio object type; 2 = AAC-LC).
pub fn mp4a_from_asc(asc: &[u8]) -> Option<String> {
    let first = *asc.first()?;
    let mut aot = (first >> 3) as u32;
    if aot == 31 {
        let second = *asc.get(1)? as u32;
        aot = 32 + (((first as u32 & 0x07) << 3) | (second >> 5));
    }
    if aot == 0 {
        return None;
    }
    Some(format!("mp4a.40.{aot}"))
}

/// Sample rate and channel count from an AudioSpecificConfig (common cases). Channel
/// configurations 1-6 are that many channels, 7 is 7.1 (8); 0 (described in a program
/// config element) and the reserved values are refused.
pub fn asc_sample_rate_channels(asc: &[u8]) -> Option<(u32, u32)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    if asc.len() < 2 {
        return None;
    }
    let idx = (((asc[0] & 0x07) << 1) | (asc[1] >> 7)) as usize;
    let rate = *RATES.get(idx)?;
    let channels = match (asc[1] >> 3) & 0x0f {
        c @ 1..=6 => c as u32,
        7 => 8,
        _ => return None,
    };
    Some((rate, channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_strings() {
        assert_eq!(
            avc1_from_avcc(&[1, 0x64, 0x00, 0x1f, 0xff]).as_deref(),
            Some("avc1.64001f")
        );
        assert_eq!(avc1_from_avcc(&[0, 0x64, 0, 0x1f]), None);
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x28, 0xaa, 0, 0, 1, 0x68, 1,
        ];
        assert_eq!(avc1_from_annexb(&au).as_deref(), Some("avc1.4d4028"));
        assert_eq!(avc1_from_annexb(&[0, 0, 1, 0x65, 1, 2]), None);
    }

    #[test]
    fn aac_strings() {
        // AAC-LC, 48 kHz, stereo
        assert_eq!(mp4a_from_asc(&[0x11, 0x90]).as_deref(), Some("mp4a.40.2"));
        assert_eq!(asc_sample_rate_channels(&[0x11, 0x90]), Some((48000, 2)));
        // AAC-LC, 44.1 kHz, mono
        assert_eq!(asc_sample_rate_channels(&[0x12, 0x08]), Some((44100, 1)));
        // 7.1 is eight channels; configuration 9 is reserved
        assert_eq!(asc_sample_rate_channels(&[0x11, 0xb8]), Some((48000, 8)));
        assert_eq!(asc_sample_rate_channels(&[0x11, 0xc8]), None);
        // HE-AAC (SBR, aot 5)
        assert_eq!(mp4a_from_asc(&[0x2b, 0x92]).as_deref(), Some("mp4a.40.5"));
    }
}
