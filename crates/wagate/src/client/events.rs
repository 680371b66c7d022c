//! Server-Sent Events as `GET /v1/events/stream` sends them, read from the bytes as they come.

/// One event of the stream: its `id`, `event` (the type) and `data` lines joined.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Splits the stream's bytes into events; a chunk may end anywhere, inside a line too.
#[derive(Default)]
pub struct SseParser {
    pending: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// The events `chunk` completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|b| *b == b'\n').map(|i| start + i) {
            let line = String::from_utf8_lossy(&self.pending[start..end]);
            let line = line.strip_suffix('\r').unwrap_or(&line).to_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.pending.drain(..start);
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            return std::mem::take(&mut self.has_data).then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_whatever_the_chunks_and_comments_are_skipped() {
        let stream = b": events follow\n\nid: evt_1\nevent: campaign.progress\ndata: {\"a\":1}\n\n\
                       :\n\nid:evt_2\r\nevent: campaign.completed\r\ndata: x\r\ndata: y\r\n\r\n";
        for size in [1, 3, 7, stream.len()] {
            let mut parser = SseParser::default();
            let events: Vec<SseEvent> = stream.chunks(size).flat_map(|c| parser.feed(c)).collect();
            assert_eq!(
                events,
                [
                    SseEvent {
                        id: Some("evt_1".into()),
                        event: Some("campaign.progress".into()),
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        id: Some("evt_2".into()),
                        event: Some("campaign.completed".into()),
                        data: "x\ny".into()
                    },
                ],
                "chunks of {size}"
            );
        }
    }
}
