//! A short list with a fixed capacity: parsing fills it without allocating.

use super::message::MAX_PORTS;

/// Up to [`MAX_PORTS`] items, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct List<T: Copy + Default> {
    items: [T; MAX_PORTS],
    len: usize,
}

impl<T: Copy + Default> Default for List<T> {
    fn default() -> Self {
        List {
            items: [T::default(); MAX_PORTS],
            len: 0,
        }
    }
}

impl<T: Copy + Default> List<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `item`; gives it back when the list is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = item;
                self.len += 1;
                Ok(())
            }
            None => Err(item),
        }
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A list of `items`, or `None` if there are more than [`MAX_PORTS`].
    pub fn from_slice(items: &[T]) -> Option<Self> {
        let mut list = Self::new();
        for &i in items {
            list.push(i).ok()?;
        }
        Some(list)
    }
}

impl<T: Copy + Default + std::fmt::Debug> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_to_capacity_then_refuses() {
        let mut l: List<u16> = List::new();
        assert!(l.is_empty());
        for i in 0..MAX_PORTS as u16 {
            l.push(i).unwrap();
        }
        assert_eq!(l.push(99), Err(99));
        assert_eq!(l.len(), MAX_PORTS);
        assert_eq!(l.as_slice()[MAX_PORTS - 1], MAX_PORTS as u16 - 1);
        assert!(List::<u16>::from_slice(&[0; MAX_PORTS + 1]).is_none());
        assert_eq!(
            format!("{:?}", List::from_slice(&[1u8, 2]).unwrap()),
            "[1, 2]"
        );
    }
}
