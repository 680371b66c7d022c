//! Interactive messages about a business's products: single- and multi-product messages,
//! catalogs and carousels.

use super::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<TextObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: ProductAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductAction {
    pub catalog_id: String,
    pub product_retailer_id: String,
}

impl ProductAction {
    pub(super) fn validate(&self, path: &str) -> Result<(), FieldError> {
        text(&key(path, "catalog_id"), &self.catalog_id, 128)?;
        text(&key(path, "product_retailer_id"), &self.product_retailer_id, 256)
    }
}

impl ProductMessage {
    pub(super) fn validate(&self, path: &str) -> Result<(), FieldError> {
        if let Some(b) = &self.body {
            body(path, b, BODY_MAX)?;
        }
        footer(path, self.footer.as_ref())?;
        self.action.validate(&key(path, "action"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductListMessage {
    /// Required, text.
    pub header: Header,
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: ProductListAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductListAction {
    pub catalog_id: String,
    pub sections: Vec<ProductSection>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub product_items: Vec<ProductItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductItem {
    pub product_retailer_id: String,
}

impl ProductListMessage {
    pub(super) fn validate(&self, path: &str) -> Result<(), FieldError> {
        if !matches!(self.header, Header::Text(_)) {
            return Err(FieldError::new(
                key(&key(path, "header"), "type"),
                "invalid_value",
                "must be text in a product list",
            ));
        }
        self.header.validate(&key(path, "header"))?;
        body(path, &self.body, BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        let action = key(path, "action");
        text(&key(&action, "catalog_id"), &self.action.catalog_id, 128)?;
        let sections = key(&action, "sections");
        count(&sections, self.action.sections.len(), 1, LIST_SECTIONS_MAX, "sections")?;
        section_titles(&sections, self.action.sections.iter().map(|s| s.title.as_ref()))?;
        let items: usize = self.action.sections.iter().map(|s| s.product_items.len()).sum();
        if items > PRODUCT_ITEMS_MAX {
            return Err(FieldError::new(
                &sections,
                "max_items",
                format!("must have at most {PRODUCT_ITEMS_MAX} products across all sections, got {items}"),
            ));
        }
        for (s, section) in self.action.sections.iter().enumerate() {
            let p = key(&idx(&sections, s), "product_items");
            count(&p, section.product_items.len(), 1, PRODUCT_ITEMS_MAX, "products")?;
            for (i, item) in section.product_items.iter().enumerate() {
                text(&key(&idx(&p, i), "product_retailer_id"), &item.product_retailer_id, 256)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CatalogMessage {
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: CatalogAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CatalogAction {
    /// Always `catalog_message`.
    pub name: String,
    pub parameters: CatalogParameters,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CatalogParameters {
    /// The product whose image is the catalog's thumbnail.
    pub thumbnail_product_retailer_id: String,
}

impl CatalogMessage {
    pub(super) fn validate(&self, path: &str) -> Result<(), FieldError> {
        body(path, &self.body, BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        action_name(path, &self.action.name, "catalog_message")?;
        let p = key(&key(path, "action"), "parameters");
        text(&key(&p, "thumbnail_product_retailer_id"), &self.action.parameters.thumbnail_product_retailer_id, 256)
    }
}

// Carousels.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CarouselMessage {
    pub body: TextObject,
    pub action: CarouselAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CarouselAction {
    /// 2 to 10 cards, all of one kind.
    pub cards: Vec<CarouselCard>,
}

/// A carousel card: media with a URL button, or a product.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CarouselCard {
    CtaUrl(MediaCard),
    Product(ProductCard),
}

tagged!(CarouselCard, "type", {
    "cta_url" => CtaUrl(MediaCard),
    "product" => Product(ProductCard),
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MediaCard {
    /// 0 to 9, unique.
    pub card_index: u32,
    /// An image or a video, the same kind on every card.
    pub header: Header,
    /// Up to 160 characters and 2 line breaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<TextObject>,
    pub action: CtaUrlAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductCard {
    pub card_index: u32,
    pub action: ProductAction,
}

impl CarouselCard {
    fn index(&self) -> u32 {
        match self {
            Self::CtaUrl(c) => c.card_index,
            Self::Product(c) => c.card_index,
        }
    }
}

impl CarouselMessage {
    pub(super) fn validate(&self, path: &str) -> Result<(), FieldError> {
        body(path, &self.body, BODY_MAX)?;
        let cards = key(&key(path, "action"), "cards");
        count(&cards, self.action.cards.len(), CAROUSEL_CARDS_MIN, CAROUSEL_CARDS_MAX, "cards")?;
        let indexes: Vec<String> = self.action.cards.iter().map(|c| c.index().to_string()).collect();
        for (i, card) in self.action.cards.iter().enumerate() {
            let p = idx(&cards, i);
            if card.index() > 9 {
                return Err(FieldError::new(key(&p, "card_index"), "range", "must be between 0 and 9"));
            }
            let first = &self.action.cards[0];
            if std::mem::discriminant(card) != std::mem::discriminant(first) {
                return Err(FieldError::new(key(&p, "type"), "invalid_value", "must be the same on every card"));
            }
            match card {
                CarouselCard::CtaUrl(c) => {
                    let kind = |h: &Header| std::mem::discriminant(h);
                    if !matches!(c.header, Header::Image(_) | Header::Video(_)) {
                        return Err(FieldError::new(
                            key(&key(&p, "header"), "type"),
                            "invalid_value",
                            "must be image or video",
                        ));
                    }
                    if let CarouselCard::CtaUrl(f) = first
                        && kind(&f.header) != kind(&c.header)
                    {
                        return Err(FieldError::new(
                            key(&key(&p, "header"), "type"),
                            "invalid_value",
                            "must be the same on every card",
                        ));
                    }
                    c.header.validate(&key(&p, "header"))?;
                    if let Some(b) = &c.body {
                        body(&p, b, CARD_BODY_MAX)?;
                        if b.text.matches('\n').count() > 2 {
                            return Err(FieldError::new(
                                key(&key(&p, "body"), "text"),
                                "max_lines",
                                "must have at most 2 line breaks",
                            ));
                        }
                    }
                    c.action.validate(&key(&p, "action"))?;
                }
                CarouselCard::Product(c) => {
                    c.action.validate(&key(&p, "action"))?;
                    if let CarouselCard::Product(f) = first
                        && f.action.catalog_id != c.action.catalog_id
                    {
                        return Err(FieldError::new(
                            key(&key(&p, "action"), "catalog_id"),
                            "invalid_value",
                            "must be the same catalog on every card",
                        ));
                    }
                }
            }
        }
        unique(indexes.iter().enumerate().map(|(i, v)| (key(&idx(&cards, i), "card_index"), v.as_str())), "card index")
    }
}
