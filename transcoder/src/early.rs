//! Media held until the ladder exists (it is chosen on the first picture), bounded in bytes: a
//! publisher that never sends a picture (audio only, or video that never decodes) cannot grow
//! memory. Past the bound the oldest media goes first; stream parameters are always kept.

use std::collections::VecDeque;

pub(crate) struct EarlyBuffer<T> {
    /// (item, bytes; `None`: parameters, never dropped)
    items: VecDeque<(T, Option<usize>)>,
    bytes: usize,
    max_bytes: usize,
    dropped: u64,
}

impl<T> EarlyBuffer<T> {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    /// Keeps `item` of `size` bytes (`None`: parameters, always kept); returns how many older
    /// media items were dropped to stay within the bound.
    pub fn push(&mut self, item: T, size: Option<usize>) -> usize {
        self.bytes += size.unwrap_or(0);
        self.items.push_back((item, size));
        let mut dropped = 0;
        while self.bytes > self.max_bytes {
            let Some(i) = self.items.iter().position(|(_, s)| s.is_some()) else {
                break;
            };
            let (_, size) = self.items.remove(i).expect("index from position");
            self.bytes -= size.unwrap_or(0);
            dropped += 1;
        }
        self.dropped += dropped as u64;
        dropped
    }

    /// Everything kept, oldest first; the buffer is empty afterwards.
    pub fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        self.items.drain(..).map(|(t, _)| t).collect()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Media items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes_oldest_media_first_parameters_kept() {
        let mut b = EarlyBuffer::new(1000);
        assert_eq!(b.push("params".to_string(), None), 0);
        for i in 0..100 {
            b.push(i.to_string(), Some(100));
            assert!(b.bytes() <= 1000);
        }
        assert_eq!(b.dropped(), 90);
        let kept = b.take();
        assert_eq!(kept.len(), 11);
        assert_eq!(kept[0], "params");
        assert_eq!(kept[1], "90");
        assert_eq!(kept[10], "99");
        assert_eq!(b.bytes(), 0);
        assert!(b.take().is_empty());
    }

    #[test]
    fn one_item_larger_than_the_bound_is_not_kept() {
        let mut b: EarlyBuffer<u8> = EarlyBuffer::new(10);
        assert_eq!(b.push(1, Some(50)), 1);
        assert_eq!(b.bytes(), 0);
        assert!(b.take().is_empty());
    }
}
